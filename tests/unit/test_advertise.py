"""What a node registers as its address: callable by the other parties, or refused."""

from __future__ import annotations

import pytest

from accord.errors import ConfigError
from accord.rpc.endpoint import advertised_endpoint


def test_the_listen_host_with_the_bound_port_unless_an_address_is_advertised() -> None:
    assert advertised_endpoint("127.0.0.1:0", 50123, None) == "127.0.0.1:50123"
    assert advertised_endpoint("0.0.0.0:50052", 50052, "pay:50052") == "pay:50052"
    assert (
        advertised_endpoint("[::]:50052", 50052, "node.accord-pay.svc.cluster.local:50052")
        == "node.accord-pay.svc.cluster.local:50052"
    )


@pytest.mark.parametrize(
    ("listen", "advertise", "reason"),
    [
        ("0.0.0.0:50052", None, "names no address others can call"),
        ("[::]:50052", None, "names no address others can call"),
        ("0.0.0.0:50052", "0.0.0.0:50052", "host:port other parties can call"),
        ("0.0.0.0:50052", "pay", "host:port other parties can call"),
        ("0.0.0.0:50052", "pay:http", "host:port other parties can call"),
        ("0.0.0.0:50052", "pay:70000", "no valid port"),
    ],
)
def test_an_address_nobody_can_call_is_refused_before_serving(
    listen: str, advertise: str | None, reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason):
        advertised_endpoint(listen, 50052, advertise)
