"""A curious coordinator that swaps a node's X25519 key in the registry it serves (issue 16,
item 7), to derive the pairwise mask seeds of every round that node takes part in.

The coordinator signs the registry, so its signature alone would let it list, for ``pay``, a
key it holds itself: ``shop`` would then mask toward the coordinator, and the coordinator would
strip shop's masks. Each node's keys now carry the node's own statement, signed by its
certificate's key (issued by the network's CA). Against real node stores, gates and gRPC
servers, with the coordinator's real keys, each test serves a registry with ``pay``'s key
swapped, in each form the coordinator can give the entry, and checks that no node masks
anything under the swapped key: a peer leaves the entry out and refuses the round (training
and scoring alike), ``pay`` refuses the registry that misstates its own keys, and the
coordinator refuses a registration whose statement another party's key signed. Before the
change, shop masked under the coordinator's key in both rounds and both nodes accepted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
from helpers import make_pki
from inprocess import Network, NodeParts, build

from accord.coordinator.app import Coordinator, CoordinatorConfig, start_coordinator
from accord.coordinator.training import load_training_set
from accord.credentials import holder_public_json, issue, new_holder_key, present
from accord.crypto import masking
from accord.crypto.keys import KeyAgreementKey, NoteSigner
from accord.crypto.round_plan import bind_round_plan
from accord.data.uci import split_by_channel, synthesize
from accord.errors import NotPermitted
from accord.node.scoring import ScoringParticipant
from accord.node.service import Node
from accord.node.training import GatedStoreData, SqlStateStore, TrainingParticipant
from accord.pki_layout import COORDINATOR, load_coordinator_signer
from accord.proto.v1 import (
    common_pb2,
    node_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from accord.registry import sign_exchange_keys, sign_registration, sign_registry
from accord.rpc.tls import CA_FILE, PartyCredentials
from accord.scoring.split_model import TRAIN_PURPOSE, SplitConfig

PURPOSES = ("model-training", "marketing")
RUN = "swap-run"
MODEL = "swap-model"
ROWS = 40
BOTH = {"pay": np.arange(ROWS), "shop": np.arange(ROWS)}


@dataclass
class Swap:
    """The network, the coordinator's keys, and the key it swaps in (whose secret it holds)."""

    net: Network
    pki: Path
    rows: dict[str, list[bytes]]
    signer: NoteSigner = field(init=False)
    creds: PartyCredentials = field(init=False)
    held: KeyAgreementKey = field(default_factory=KeyAgreementKey.generate)
    version: int = 0

    def __post_init__(self) -> None:
        self.signer = load_coordinator_signer(self.pki / COORDINATOR)
        self.creds = PartyCredentials.load(self.pki / COORDINATOR)
        self.version = self.net.registry.view().version

    def publish(
        self, change: Callable[[registry_pb2.RegistryDocument], None], to: list[str]
    ) -> dict[str, grpc.StatusCode]:
        """The honest registry changed by ``change``, as a newer version signed with the
        coordinator's own key and pushed to ``to`` over the nodes' real servers."""
        document = registry_pb2.RegistryDocument()
        document.ParseFromString(self.net.registry.current().document)
        self.version += 1
        document.version = self.version
        change(document)
        signed = sign_registry(document, self.signer)
        codes: dict[str, grpc.StatusCode] = {}
        for name in to:
            endpoint = self.net.nodes[name].endpoint
            with self.creds.channel(endpoint, name) as channel:
                try:
                    node_pb2_grpc.NodeServiceStub(channel).UpdateRegistry(signed, timeout=10)
                    codes[name] = grpc.StatusCode.OK
                except grpc.RpcError as err:
                    codes[name] = err.code()  # type: ignore[attr-defined]
                    assert "refusing" in (err.details() or ""), err.details()  # type: ignore[attr-defined]
        return codes

    def restore(self) -> None:
        """An honest newer version, so the next test starts from the real keys."""
        assert set(self.publish(lambda _: None, list(self.net.nodes)).values()) == {
            grpc.StatusCode.OK
        }


def entry(document: registry_pb2.RegistryDocument, channel: str) -> registry_pb2.NodeRegistration:
    return next(e.node for e in document.nodes if e.node.channel == channel)


# The forms a swapped entry can take: the coordinator holds no node's certificate key.
def keep_statement(swap: Swap) -> Callable[[registry_pb2.RegistryDocument], None]:
    def change(document: registry_pb2.RegistryDocument) -> None:
        entry(document, "pay").kx_key = swap.held.public_key

    return change


def sign_with_coordinator_certificate(
    swap: Swap,
) -> Callable[[registry_pb2.RegistryDocument], None]:
    def change(document: registry_pb2.RegistryDocument) -> None:
        pay = entry(document, "pay")
        pay.kx_key = swap.held.public_key
        pay.key_statement = sign_exchange_keys(
            swap.creds.key_pem,
            ca_pem=swap.creds.ca_pem,
            channel="pay",
            role="feature",
            identity_key=pay.identity_key,
            kx_key=pay.kx_key,
        )

    return change


def strip_statement(swap: Swap) -> Callable[[registry_pb2.RegistryDocument], None]:
    def change(document: registry_pb2.RegistryDocument) -> None:
        pay = entry(document, "pay")
        pay.kx_key = swap.held.public_key
        pay.key_statement = b""

    return change


SWAPS = [keep_statement, sign_with_coordinator_certificate, strip_statement]


@pytest.fixture(scope="module")
def swap(tmp_path_factory: pytest.TempPathFactory, pki_dir: Path) -> Iterator[Swap]:
    split = split_by_channel(synthesize(300, seed=7), "full")
    tables = {c: split.tables[c] for c in ("pay", "shop", "label")}
    consents = {name: dict.fromkeys(t.refs, PURPOSES) for name, t in tables.items()}
    net = build(tmp_path_factory.mktemp("swap"), pki_dir, tables, consents)
    try:
        alignment_run = net.orchestrator.run().run_id
        for channel in ("pay", "shop"):
            part = as_node_process_builds_it(net.nodes[channel])
            part.start(RUN, alignment_run, SplitConfig(rounds=1), seed=1)
            part.finish(RUN, MODEL)  # a kept bottom model, for the scoring rounds
        data = load_training_set(net.ledger.store.engine, alignment_run)
        pay, shop = data.keys["pay"], data.keys["shop"]
        both = [i for i in range(len(pay)) if pay[i] and shop[i]][:ROWS]
        assert len(both) == ROWS
        rows = {"pay": [pay[i] for i in both], "shop": [shop[i] for i in both]}
        yield Swap(net, pki_dir, rows)
    finally:
        net.stop()


def as_node_process_builds_it(parts: NodeParts) -> TrainingParticipant:
    """A node's training participant as a fresh process builds it: a new Node over the node's
    store, the peers' keys from the registry that node accepted (verified again on load)."""
    old = parts.node
    node = Node(
        old.engine,
        channel=old.channel,
        role=old.role,
        keys=old.keys,
        coordinator_key=old.coordinator_key,
        network_ca=old.network_ca,
    )
    return TrainingParticipant(
        old.channel,
        GatedStoreData(old.engine, parts.gate),
        SqlStateStore(old.engine),
        old.keys.kx,
        node.feature_peers(),
    )


class Masked:
    """Every matrix a node handed to masking, and the keys it masked toward."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, dict[str, bytes]]] = []
        real = masking.mask_embedding

        def remember(node, key, peers, round_id, matrix, **kwargs):  # type: ignore[no-untyped-def]
            self.calls.append((node, dict(peers)))
            return real(node, key, peers, round_id, matrix, **kwargs)

        monkeypatch.setattr(masking, "mask_embedding", remember)


def round_id(n: int) -> bytes:
    return masking.derive_round_id(RUN.encode(), n, 0, ["pay", "shop"])


@pytest.mark.parametrize("form", SWAPS, ids=lambda f: f.__name__)
def test_a_training_round_under_a_swapped_peer_key_is_refused_and_masks_nothing(
    swap: Swap, form: Callable[[Swap], Callable[..., None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    masked = Masked(monkeypatch)
    codes = swap.publish(form(swap), ["shop"])
    assert codes == {"shop": grpc.StatusCode.OK}  # accepted, with pay's entry left out
    shop = as_node_process_builds_it(swap.net.nodes["shop"])
    assert "pay" not in shop.peers
    with pytest.raises(NotPermitted, match="no verified exchange key for pay"):
        shop.embed(RUN, round_id(1), TRAIN_PURPOSE, BOTH, ROWS, swap.rows["shop"])
    assert masked.calls == []
    swap.restore()


def test_an_honest_registry_still_masks_toward_the_real_key_and_sums(
    swap: Swap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the same path over the honest registry answers, masks toward pay's own
    key, and the coordinator decodes the exact sum (nothing else)."""
    masked = Masked(monkeypatch)
    rid = round_id(2)
    answers = [
        as_node_process_builds_it(swap.net.nodes[c]).embed(
            RUN, rid, TRAIN_PURPOSE, BOTH, ROWS, swap.rows[c]
        )
        for c in ("pay", "shop")
    ]
    bound = bind_round_plan(rid, TRAIN_PURPOSE, ROWS, BOTH)
    masking.aggregate(answers, ["pay", "shop"], expected_round_id=bound)
    to_pay = next(peers["pay"] for node, peers in masked.calls if node == "shop")
    assert to_pay == swap.net.nodes["pay"].node.keys.kx.public_key != swap.held.public_key


def scoring_participant(parts: NodeParts) -> ScoringParticipant:
    """Wired as node.app wires it: peers from the registry the node accepted."""
    node = parts.node
    return ScoringParticipant(
        node.engine,
        node.channel,
        parts.gate,
        parts.alignment,
        node.keys.kx,
        None,
        node.coordinator_key,
        peers_source=node.feature_peers,
    )


def credential_for_shop(swap: Swap, request_id: str, row: int) -> str:
    """A credential the coordinator issues for one customer both hold, presented to shop."""
    holder = new_holder_key()
    issued = issue(
        swap.signer,
        request_id=request_id,
        purposes=["marketing"],
        touchpoint="checkout",
        model=MODEL,
        nodes={
            "pay": (swap.held.public_key, swap.rows["pay"][row]),
            "shop": (swap.net.nodes["shop"].node.keys.kx.public_key, swap.rows["shop"][row]),
        },
        holder_jwk=holder_public_json(holder),
        now=int(time.time()),
    )
    return present(issued.credential, "shop", holder)


@pytest.mark.parametrize("form", SWAPS, ids=lambda f: f.__name__)
def test_a_scoring_round_under_a_swapped_peer_key_is_refused_and_masks_nothing(
    swap: Swap, form: Callable[[Swap], Callable[..., None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    masked = Masked(monkeypatch)
    assert swap.publish(form(swap), ["shop"]) == {"shop": grpc.StatusCode.OK}
    shop = scoring_participant(swap.net.nodes["shop"])
    request_id = f"swap-score-{form.__name__}"
    presentation = credential_for_shop(swap, request_id, row=0)
    shop.check(request_id, presentation, "marketing")
    with pytest.raises(NotPermitted, match="pay"):
        shop.compute(request_id, presentation, "marketing", ["pay", "shop"])
    assert masked.calls == []
    swap.restore()
    # the control: over the honest registry the same round masks toward pay's real key
    request_id += "-honest"
    presentation = credential_for_shop(swap, request_id, row=1)
    shop.check(request_id, presentation, "marketing")
    shop.compute(request_id, presentation, "marketing", ["pay", "shop"])
    assert [peers["pay"] for _, peers in masked.calls] == [
        swap.net.nodes["pay"].node.keys.kx.public_key
    ]


@pytest.mark.parametrize("form", SWAPS, ids=lambda f: f.__name__)
def test_a_node_whose_own_entry_is_swapped_refuses_the_registry(
    swap: Swap, form: Callable[[Swap], Callable[..., None]]
) -> None:
    pay = swap.net.nodes["pay"].node
    before = pay.info().registry_version
    assert swap.publish(form(swap), ["pay"]) == {"pay": grpc.StatusCode.PERMISSION_DENIED}
    assert pay.info().registry_version == before

    # the same with the swapped entry's statement intact but only the identity key changed
    def identity(document: registry_pb2.RegistryDocument) -> None:
        entry(document, "pay").identity_key = NoteSigner.generate("pay").verifier.public_key

    assert swap.publish(identity, ["pay"]) == {"pay": grpc.StatusCode.PERMISSION_DENIED}
    assert pay.info().registry_version == before
    swap.restore()


# --- at registration: the coordinator checks the statement against the caller's certificate --


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Coordinator, Path]]:
    pki = make_pki(tmp_path_factory.mktemp("pki") / "pki")
    running = start_coordinator(
        CoordinatorConfig(
            data_dir=tmp_path_factory.mktemp("coordinator"),
            pki_dir=pki / COORDINATOR,
            listen="127.0.0.1:0",
        )
    )
    yield running, pki
    running.stop()


def registration(
    pki: Path, *, signed_by: str, kx_after: bytes | None = None
) -> registry_pb2.RegisterRequest:
    """pay's registration, its keys' statement signed with ``signed_by``'s certificate key
    (and, with ``kx_after``, the exchange key changed after signing)."""
    identity = NoteSigner.generate("pay")
    pay = PartyCredentials.load(pki / "pay")
    kx = KeyAgreementKey.generate().public_key
    reg = registry_pb2.NodeRegistration(
        channel="pay",
        role=common_pb2.ROLE_FEATURE,
        identity_key=identity.verifier.public_key,
        kx_key=kx,
        certificate_pem=pay.cert_pem,
        schema=[common_pb2.FeatureSpec(name="PAY_0", type=common_pb2.FEATURE_TYPE_INT)],
        endpoint="127.0.0.1:4000",
        key_statement=sign_exchange_keys(
            PartyCredentials.load(pki / signed_by).key_pem,
            ca_pem=(pki / "ca" / CA_FILE).read_bytes(),
            channel="pay",
            role="feature",
            identity_key=identity.verifier.public_key,
            kx_key=kx,
        ),
    )
    if kx_after is not None:
        reg.kx_key = kx_after
    return sign_registration(reg, identity)


def register(
    coordinator: Coordinator, pki: Path, request: registry_pb2.RegisterRequest
) -> grpc.StatusCode:
    pay = PartyCredentials.load(pki / "pay")
    with pay.channel(coordinator.endpoint, COORDINATOR) as channel:
        try:
            registry_pb2_grpc.RegistryStub(channel).Register(request, timeout=10)
        except grpc.RpcError as err:
            assert "not signed by its certificate" in (err.details() or ""), err.details()  # type: ignore[attr-defined]
            return err.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def test_a_registration_whose_keys_another_party_signed_is_refused_at_the_coordinator(
    coordinator: tuple[Coordinator, Path],
) -> None:
    running, pki = coordinator
    before = running.registry.view().version
    for other in ("shop", COORDINATOR):
        assert register(running, pki, registration(pki, signed_by=other)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
    # pay's own signature, then the exchange key changed on the way
    changed = registration(pki, signed_by="pay", kx_after=KeyAgreementKey.generate().public_key)
    assert register(running, pki, changed) == grpc.StatusCode.PERMISSION_DENIED
    assert running.registry.view().version == before
    # the control: pay's own statement over its own keys is accepted and served as sent
    honest = registration(pki, signed_by="pay")
    assert register(running, pki, honest) == grpc.StatusCode.OK
    served = running.registry.view().node("pay")
    assert served is not None
    assert served.key_statement == honest.registration.key_statement
