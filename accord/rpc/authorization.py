"""One server interceptor decides who may call what, before any handler runs.

The caller's party, role and certificate fingerprint come from the certificate it presented
on the mutual-TLS connection (the CA bound the role into it). The coordinator adds admission:
the certificate must also be the one the operator-signed membership list names for that
party and role. Refusals are :class:`accord.errors.NotPermitted` (PERMISSION_DENIED) or
:class:`accord.errors.NotAuthenticated`, raised inside the error interceptor, which maps them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import grpc
from grpc_interceptor import ServerInterceptor

from accord.crypto.errors import CryptoError
from accord.crypto.pki import certificate_common_name, certificate_fingerprint, certificate_role
from accord.errors import NotAuthenticated, NotPermitted
from accord.rpc.roles import allowed_roles
from accord.rpc.tls import peer_certificate_pem


@dataclass(frozen=True)
class PeerIdentity:
    party: str
    role: str
    fingerprint: str


@lru_cache(maxsize=256)
def identity_of(cert_pem: bytes) -> PeerIdentity:
    """Who a (CA-verified) certificate names; cached: the same few certificates call often."""
    try:
        return PeerIdentity(
            certificate_common_name(cert_pem),
            certificate_role(cert_pem),
            certificate_fingerprint(cert_pem),
        )
    except CryptoError as exc:
        raise NotAuthenticated(
            f"the caller's certificate carries no party role ({exc}); ask the network's "
            "operator for a certificate made with `accord pki sign`"
        ) from exc


Admission = Callable[[PeerIdentity], None]
"""Raises NotPermitted unless the identity is admitted to the network."""


class AuthorizationInterceptor(ServerInterceptor):
    def __init__(self, admit: Admission | None = None) -> None:
        self._admit = admit

    def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.ServicerContext,
        method_name: str,
    ) -> Any:
        peer = identity_of(peer_certificate_pem(context))
        if self._admit is not None:
            self._admit(peer)
        roles = allowed_roles(method_name)
        if peer.role not in roles:
            raise NotPermitted(
                f"{peer.party!r} holds the {peer.role} role, which may not call {method_name}"
                + (f" (callers: {', '.join(sorted(roles))})" if roles else "")
            )
        return method(request_or_iterator, context)
