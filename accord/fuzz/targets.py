"""The fuzz targets: every parser that takes bytes from another party or from a file.

Each target builds what it needs under a work folder (keys, a real SQLite store, a ledger),
returns seeds (valid inputs, so mutations start from the interesting shapes) and a ``call`` that
feeds one input through the same function the service or CLI uses. Targets that store state
return a ``state`` token: SQLite's ``PRAGMA data_version`` read on a connection of its own, which
moves whenever another connection commits a change to the file, so a refused input that stored
anything is seen, and one that only read, or rolled back, is not.

Servicer targets decode the bytes as the RPC's request message (what gRPC does before the
servicer runs; bytes that do not decode never reach it) and call the servicer method with the
caller's identity as mTLS would give it.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import DecodeError, Message

from accord.errors import InvalidInput
from accord.fuzz.harness import Harness, Target

ORIGIN = "accord.fuzz/coordinator"
M = TypeVar("M", bound=Message)
DEEP_JSON = b"[" * 1500  # nested deeper than the interpreter's stack allows
NOW = 1_790_000_000 - 1_790_000_000 % 86400 + 3600


def _json(data: bytes) -> Any:
    """JSON as the services read it (``json.loads`` of the bytes received)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        # the callers refuse non-JSON in their own words; the parsers under test start after it
        raise InvalidInput("not JSON") from exc


def _text(data: bytes) -> str:
    """Text as a proto ``string`` field carries it: always valid UTF-8."""
    return data.decode("utf-8", "replace")


def _decode(cls: type[M], data: bytes) -> M:
    message = cls()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidInput("the request does not decode") from exc
    return message


class PeerContext:
    """What a servicer reads of an mTLS connection: the caller's certificate name and PEM."""

    def __init__(self, party: str, pem: bytes = b"") -> None:
        self._auth = {"x509_common_name": [party.encode()], "x509_pem_cert": [pem]}

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


def _peer(party: str, pem: bytes = b"") -> grpc.ServicerContext:
    return cast(grpc.ServicerContext, PeerContext(party, pem))


def _data_version(path: Path) -> Callable[[], object]:
    observer = sqlite3.connect(path, check_same_thread=False, isolation_level=None)

    def state() -> object:
        return observer.execute("PRAGMA data_version").fetchone()[0]

    return state


def _dispatch(
    methods: Sequence[tuple[type[Message], Callable[[Any], object]]],
) -> Callable[[bytes], object]:
    """The first byte picks the RPC, the rest is its request message."""

    def call(data: bytes) -> object:
        if not data:
            raise InvalidInput("empty")
        cls, method = methods[data[0] % len(methods)]
        return method(_decode(cls, data[1:]))

    return call


# ---------------------------------------------------------------------------------------------
# signed notes, checkpoints, cosignatures


def _note(work: Path) -> Harness:
    from accord.crypto.cosignature import cosign, cosignatures
    from accord.crypto.keys import NoteSigner
    from accord.crypto.note import Checkpoint, sign_checkpoint, verify_note

    log = NoteSigner.generate(ORIGIN)
    witness = NoteSigner.generate("accord.fuzz/witness")
    body = Checkpoint(ORIGIN, 7, bytes(range(32)), ("accord-time 1",)).to_text()
    note = sign_checkpoint(Checkpoint.from_text(body), [log])
    cosigned = note + cosign(body, witness, NOW).line()

    def call(data: bytes) -> object:
        verified = verify_note(data, [log.verifier])
        return cosignatures(data.decode(), [witness.verifier]), verified

    return Harness(call, [note.encode(), cosigned.encode()])


def _checkpoint(work: Path) -> Harness:
    from accord.crypto.keys import NoteSigner
    from accord.crypto.note import Checkpoint, sign_checkpoint, verify_checkpoint

    log = NoteSigner.generate(ORIGIN)
    seeds = [
        sign_checkpoint(Checkpoint(ORIGIN, size, bytes([size % 256]) * 32, ext), [log]).encode()
        for size, ext in ((0, ()), (1, ("x",)), (123456, ("accord-time 1", "accord-status AA==")))
    ]

    def call(data: bytes) -> object:
        body, _, _ = _text(data).partition("\n\n")
        Checkpoint.from_text(body + "\n")  # what a witness reads before the signature
        return verify_checkpoint(data, [log.verifier], origin=ORIGIN)

    return Harness(call, seeds)


# ---------------------------------------------------------------------------------------------
# Merkle proofs, tiles, status map


def _merkle_tree(count: int) -> tuple[list[bytes], Any]:
    """``count`` leaf hashes and a node store holding their tree."""
    from accord.crypto.merkle import CompactRange, MemoryNodeStore, leaf_hash

    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(count)]
    store = MemoryNodeStore()
    compact = CompactRange()
    for leaf in leaves:
        store.put(compact.append(leaf))
    return leaves, store


def _proof_file(work: Path) -> Callable[[bytes], object]:
    """An auditor's proof file (``accord audit verify-proof``): read, then verified."""
    from accord.audit import read_proof_file

    path = work / "proof.json"

    def call(data: bytes) -> object:
        path.write_bytes(data)
        read_proof_file(path).verify()
        return None

    return call


def _inclusion(work: Path) -> Harness:
    from accord.crypto.merkle import InclusionProof, inclusion_proof, root_at

    leaves, store = _merkle_tree(21)
    root = root_at(store, len(leaves))
    seeds = []
    for index in (0, 5, 20):
        proof = inclusion_proof(store, index, len(leaves))
        doc = InclusionProof(index, len(leaves), root, leaves[index], tuple(proof))
        seeds.append(json.dumps(doc.to_json()).encode())

    return Harness(_proof_file(work), seeds)


def _consistency(work: Path) -> Harness:
    from accord.crypto.merkle import ConsistencyProof, consistency_proof, root_at

    leaves, store = _merkle_tree(21)
    seeds = []
    for size1 in (1, 4, 13, 21):
        proof = consistency_proof(store, size1, len(leaves))
        doc = ConsistencyProof(
            size1, len(leaves), root_at(store, size1), root_at(store, len(leaves)), tuple(proof)
        )
        seeds.append(json.dumps(doc.to_json()).encode())

    return Harness(_proof_file(work), seeds)


def _tiles(work: Path) -> Harness:
    from accord.crypto.merkle import CompactRange, MemoryNodeStore, leaf_hash
    from accord.crypto.tiles import (
        TileID,
        build_tile,
        encode_entry_bundle,
        parse_entry_bundle,
        parse_tile,
        root_from_tiles,
        tiles_for_size,
    )

    entries = [f"entry {i}".encode() for i in range(300)]
    store = MemoryNodeStore()
    compact = CompactRange()
    for entry in entries:
        store.put(compact.append(leaf_hash(entry)))
    tiles = {t.path: build_tile(store, t) for t in tiles_for_size(len(entries))}

    # one input: a tile path, a NUL, then the tile's bytes; a tree size of 300 is read back
    # through the fuzzed tile in place of the real one (a log server serving what it likes)
    def call(data: bytes) -> object:
        raw_path, _, body = data.partition(b"\x00")
        path = _text(raw_path)
        tile = TileID.parse(path)
        if tile.is_entries:
            parse_entry_bundle(body, tile.width)
        else:
            parse_tile(body, tile.width)
        served = {**tiles, path: body}

        def read(p: str) -> bytes:
            if p not in served:
                raise InvalidInput(f"no tile {p}")
            return served[p]

        return root_from_tiles(read, len(entries))

    seeds = [p.encode() + b"\x00" + body for p, body in list(tiles.items())[:4]]
    seeds.append(b"tile/entries/000.p/7\x00" + encode_entry_bundle(entries[:7]))
    return Harness(call, seeds)


def _statusmap(work: Path) -> Harness:
    from accord.crypto.statusmap import StatusMap, StatusProof, verify_status

    status = StatusMap()
    keys = [bytes([i]) * 32 for i in range(1, 9)]
    for key in keys:
        status.set(key, bytes(32))
    root = status.root

    # the input names the key and value it claims, as the proof's reader gets them
    def call(data: bytes) -> object:
        doc = _json(data)
        if not isinstance(doc, dict) or not isinstance(doc.get("proof"), dict):
            raise InvalidInput("a status proof document holds a proof object")
        try:
            key = base64.b64decode(str(doc.get("key", "")).encode(), validate=True)
        except ValueError as exc:
            raise InvalidInput("the key is not base64") from exc
        value = doc.get("value")
        proof = StatusProof.from_json(doc["proof"])
        verify_status(root, key, None if value is None else bytes(32), proof)
        return None

    seeds = [
        json.dumps(
            {"key": base64.b64encode(k).decode(), "value": 1, "proof": status.prove(k).to_json()}
        ).encode()
        for k in keys[:3]
    ]
    absent = bytes([200]) * 32
    seeds.append(
        json.dumps(
            {"key": base64.b64encode(absent).decode(), "proof": status.prove(absent).to_json()}
        ).encode()
    )
    return Harness(call, seeds)


# ---------------------------------------------------------------------------------------------
# ledger events, consent proofs, credentials


def _consent_event(work: Path) -> Harness:
    from accord.consent.events import ConsentGranted, ConsentRevoked, Record, decode, encode

    seeds = [
        encode(ConsentGranted("pay", b"\x01" * 32, b"\x02" * 32, ("risk-scoring",), NOW, NOW)),
        encode(ConsentRevoked("pay", b"\x01" * 32, b"\x02" * 32, NOW, "withdrawn")),
        encode(Record("pay", "policy.version", NOW, {"version": "v1"})),
        DEEP_JSON,
    ]
    return Harness(decode, seeds)


def _consent_proof(work: Path) -> Harness:
    from accord.consent.proofs import verify_consent_proof
    from accord.coordinator.ledger.log import Ledger
    from accord.crypto.keys import NoteSigner
    from accord.node.consent import default_terms
    from accord.store.engine import make_engine
    from accord.store.migrate import upgrade

    del default_terms
    signer = NoteSigner.generate(ORIGIN)
    engine = make_engine(f"sqlite:///{work / 'proof-ledger.db'}")
    upgrade(engine, "coordinator")
    ledger = Ledger(engine, signer, checkpoint_interval_s=3600)
    ledger.start()
    from accord.consent.events import ConsentGranted, encode
    from accord.consent.proofs import proof_document

    consent = b"\x02" * 32
    ledger.append(
        [
            encode(
                ConsentGranted(
                    "pay", b"\x01" * 32, consent, ("risk-scoring",), NOW + 10**8, int(time.time())
                )
            )
        ],
        appended_by="pay",
    )
    ledger.checkpointer.publish()
    found = ledger.consent_status(consent)
    missing = ledger.consent_status(b"\x03" * 32)
    ledger.stop()
    seeds = [
        json.dumps(
            proof_document(
                f.checkpoint.note,
                f.consent,
                f.status.encode().decode() if f.status else "",
                f.proof,
            )
        ).encode()
        for f in (found, missing)
    ]

    def call(data: bytes) -> object:
        return verify_consent_proof(_json(data), signer.verifier)

    return Harness(call, seeds)


def _presentation(work: Path) -> Harness:
    from accord.consent import credential as cred
    from accord.crypto import bbs
    from accord.wallet import holder
    from accord.wallet.store import Wallet

    sk = bbs.key_gen(b"fuzz channel key material, at least 32 bytes", b"shop")
    pk = bbs.sk_to_pk(sk)
    wallet = Wallet(bytes(range(32)).hex())
    asked = holder.request(wallet, "shop")
    fields = cred.CredentialFields(
        "shop", cred.credential_expiry(NOW, NOW + 30 * 86400), "2026-09", "TW", ("risk-scoring",)
    )
    signature, messages = cred.issue(sk, pk, asked.commitment, fields)
    holder.accept(wallet, asked.request_id, pk, signature, messages)
    nonce = b"\x01" * 16
    shown = holder.present(wallet, "shop", "risk-scoring", nonce, "coordinator", NOW)

    def call(data: bytes) -> object:
        doc = _json(data)
        if not isinstance(doc, dict):
            raise InvalidInput("a presentation is a JSON object")
        presentation = cred.Presentation.from_json(doc)
        cred.verify_presentation(
            pk,
            presentation,
            channel="shop",
            purpose="risk-scoring",
            nonce=nonce,
            audience="coordinator",
            now=NOW,
        )
        return None

    return Harness(call, [json.dumps(shown.to_json()).encode()])


def _credential(work: Path) -> Harness:
    """Both sides of issuance: the channel checks the holder's commitment, the holder checks
    the issued messages and signature."""
    from accord.consent import credential as cred
    from accord.crypto import bbs
    from accord.crypto.bbs import blind

    sk = bbs.key_gen(b"fuzz channel key material, at least 32 bytes", b"shop")
    pk = bbs.sk_to_pk(sk)
    secret = b"holder secret"
    commitment, prover_blind = blind.commit([secret])
    fields = cred.CredentialFields(
        "shop", cred.credential_expiry(NOW, NOW + 30 * 86400), "2026-09", "TW", ("marketing",)
    )
    signature, messages = cred.issue(sk, pk, commitment, fields)

    # input: a selector byte, then either a commitment or signature || messages (NUL-split)
    def call(data: bytes) -> object:
        if not data:
            raise InvalidInput("empty")
        if data[0] % 2 == 0:
            return cred.issue(sk, pk, data[1:], fields)
        sig, rest = data[1:81], data[81:]
        got = rest.split(b"\x00")
        parsed = cred.CredentialFields.from_messages(got)
        blind.blind_verify(pk, sig, cred.HEADER, got, [secret], prover_blind)
        return parsed

    return Harness(call, [b"\x00" + commitment, b"\x01" + signature + b"\x00".join(messages)])


def _sd_jwt(work: Path) -> Harness:
    """A node verifying a touchpoint's SD-JWT presentation; the coordinator reading the
    touchpoint's holder key (selector byte 1), as scoring's Begin does."""
    from accord import credentials
    from accord.crypto.keys import KeyAgreementKey, NoteSigner

    coordinator = NoteSigner.generate(ORIGIN)
    pay = KeyAgreementKey.generate()
    holder = credentials.new_holder_key()
    holder_json = credentials.holder_public_json(holder)
    now = int(time.time())

    def issue(holder_jwk: str) -> credentials.Issued:
        return credentials.issue(
            coordinator,
            request_id="r1",
            purposes=["risk-scoring"],
            touchpoint="checkout",
            model="m1",
            nodes={"pay": (pay.public_key, b"\x05" * 16)},
            holder_jwk=holder_jwk,
            now=now,
        )

    presentation = credentials.present(issue(holder_json).credential, "pay", holder)

    def call(data: bytes) -> object:
        if data[:1] == b"\x01":
            return issue(_text(data[1:]))
        return credentials.verify(
            _text(data[1:]),
            node="pay",
            kx_key=pay,
            issuer=coordinator.verifier,
            purpose="risk-scoring",
            now=now,
        )

    jwt, _, rest = presentation.partition("~")
    deep = base64.urlsafe_b64encode(DEEP_JSON).decode().rstrip("=")
    seeds = [presentation, f"{jwt}~{deep}~{rest}"]
    return Harness(call, [b"\x00" + p.encode() for p in seeds] + [b"\x01" + holder_json.encode()])


def _bbs_proof(work: Path) -> Harness:
    from accord.crypto import bbs

    sk = bbs.key_gen(b"fuzz bbs key material, at least 32 bytes long", b"k")
    pk = bbs.sk_to_pk(sk)
    messages = [b"one", b"two", b"three"]
    signature = bbs.sign(sk, pk, b"h", messages)
    proof = bbs.proof_gen(pk, signature, b"h", b"ph", messages, [0, 2])

    def call(data: bytes) -> object:
        bbs.proof_verify(pk, data, b"h", b"ph", [b"one", b"three"], [0, 2])
        return None

    return Harness(call, [proof])


# ---------------------------------------------------------------------------------------------
# registry, policies, CSV imports


def _pki(work: Path) -> tuple[Path, bytes]:
    """A CA and one feature node's (``pay``) certificate, as ``accord pki init`` makes them."""
    import datetime as dt

    from accord.pki_layout import init_pki
    from accord.rpc.tls import CA_FILE

    directory = work / "pki"
    if not (directory / "pay").exists():
        init_pki(
            directory,
            ["coordinator", "pay"],
            network="accord.fuzz",
            force=False,
            now=dt.datetime.now(dt.UTC),
        )
    return directory / "pay", (directory / "pay" / CA_FILE).read_bytes()


def _node_registration(work: Path, identity: Any, kx_key: Any = None) -> Any:
    from accord.crypto.keys import KeyAgreementKey
    from accord.proto.v1 import common_pb2, registry_pb2
    from accord.registry import sign_exchange_keys
    from accord.rpc.tls import CERT_FILE, KEY_FILE

    party, ca_pem = _pki(work)
    kx = (kx_key or KeyAgreementKey.generate()).public_key
    statement = sign_exchange_keys(
        (party / KEY_FILE).read_bytes(),
        ca_pem=ca_pem,
        channel="pay",
        role="feature",
        identity_key=identity.verifier.public_key,
        kx_key=kx,
    )
    return registry_pb2.NodeRegistration(
        channel="pay",
        role=common_pb2.ROLE_FEATURE,
        identity_key=identity.verifier.public_key,
        kx_key=kx,
        certificate_pem=(party / CERT_FILE).read_bytes(),
        schema=[common_pb2.FeatureSpec(name="PAY_0", type=common_pb2.FEATURE_TYPE_INT)],
        endpoint="127.0.0.1:4000",
        key_statement=statement,
    )


def _registration(work: Path) -> Harness:
    from accord.crypto.keys import NoteSigner
    from accord.proto.v1 import registry_pb2
    from accord.registry import sign_registration, verify_registration

    identity = NoteSigner.generate("pay")
    request = sign_registration(_node_registration(work, identity), identity)

    # selector byte: 0 = the request as received; 1 = a registration whose proof of possession
    # verifies (signed here with the key it names), so the field checks behind it are reached
    def call(data: bytes) -> object:
        if not data:
            raise InvalidInput("empty")
        if data[0] % 2 == 0:
            return verify_registration(_decode(registry_pb2.RegisterRequest, data[1:]))
        reg = _decode(registry_pb2.NodeRegistration, data[1:])
        reg.identity_key = identity.verifier.public_key
        return verify_registration(sign_registration(reg, identity))

    return Harness(
        call,
        [b"\x00" + request.SerializeToString(), b"\x01" + request.registration.SerializeToString()],
    )


def _registry(work: Path) -> Harness:
    from accord.crypto.keys import NoteSigner
    from accord.proto.v1 import registry_pb2
    from accord.registry import REGISTRY_DOMAIN, sign_registry, verify_registry

    coordinator = NoteSigner.generate(ORIGIN)
    _, ca_pem = _pki(work)
    document = registry_pb2.RegistryDocument(
        version=3,
        coordinator_key=coordinator.verifier.encode(),
        issued_at=NOW,
        nodes=[
            registry_pb2.RegistryEntry(
                node=_node_registration(work, NoteSigner.generate("pay")), registered_at=NOW
            )
        ],
    )
    signed = sign_registry(document, coordinator)

    # selector byte: 0 = the signed registry as received; 1 = a document the coordinator did
    # sign (the parser behind the signature check, which a node trusts no further)
    def call(data: bytes) -> object:
        if not data:
            raise InvalidInput("empty")
        if data[0] % 2 == 0:
            received = _decode(registry_pb2.SignedRegistry, data[1:])
        else:
            body = data[1:]
            received = registry_pb2.SignedRegistry(
                document=body, signature=coordinator.sign(REGISTRY_DOMAIN + body)
            )
        return verify_registry(received, coordinator.verifier, ca_pem=ca_pem)

    return Harness(call, [b"\x00" + signed.SerializeToString(), b"\x01" + signed.document])


def _membership(work: Path) -> Harness:
    """The coordinator's signed membership list (members.json); selector byte 1: a document
    the CA did sign, so the parser behind the signature check is reached too."""
    from accord.crypto.membership import DOMAIN
    from accord.pki_layout import CA_KEY_FILE, MEMBERS_FILE, load_membership
    from accord.secrets import read_secret

    party, ca_pem = _pki(work)
    members = party.parent / "coordinator" / MEMBERS_FILE
    seed = members.read_bytes()
    key = serialization.load_pem_private_key(
        read_secret(party.parent / "ca" / CA_KEY_FILE).encode(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    path = work / "members.json"

    def call(data: bytes) -> object:
        if data[:1] == b"\x01":
            document = data[1:]
            signature = key.sign(DOMAIN + document, ec.ECDSA(hashes.SHA256()))
            outer = {"document": _text(document), "signature": base64.b64encode(signature).decode()}
            data = b"\x00" + json.dumps(outer).encode()
        path.write_bytes(data[1:])
        return load_membership(path, ca_pem)

    inner = json.loads(seed)["document"].encode()
    return Harness(call, [b"\x00" + seed, b"\x01" + inner, b"\x01" + DEEP_JSON])


def _policy(work: Path) -> Harness:
    from importlib import resources

    from accord.coordinator.policy import parse_policy

    default = resources.files("accord.coordinator.policies").joinpath("default.toml").read_text()
    return Harness(lambda data: parse_policy(_text(data)), [default.encode()])


def _purchase_csv(work: Path) -> Harness:
    from accord.data.purchase_file import read_purchase_log

    path = work / "shop.purchases.csv"
    seed = (
        b"local_ref,phone,email,date,number_of_cds,dollar_value\n"
        b"c1,+886900000001,a@example.com,1997-01-01,2,29.33\n"
        b"c1,+886900000001,a@example.com,1997-02-11,1,11.77\n"
        b"c2,,b@example.com,1998-06-30,0,0\n"
    )

    def call(data: bytes) -> object:
        path.write_bytes(data)
        return read_purchase_log(path)

    if not path.name.endswith(".purchases.csv"):
        raise AssertionError(path)
    return Harness(call, [seed])


def _channel_csv(work: Path) -> Harness:
    from accord.data.channel_file import read_channel_table
    from accord.node import store

    engine = _store(work / "import-node.db", "node")

    csv_path = work / "shop.csv"
    schema_path = work / "shop.schema.json"
    schema = json.dumps(
        {
            "channel": "shop",
            "columns": [
                {"name": "SHOP_0", "type": "int"},
                {"name": "SHOP_1", "type": "float"},
                {"name": "SHOP_2", "type": "bool"},
            ],
        }
    ).encode()
    table = (
        b"local_ref,phone,email,SHOP_0,SHOP_1,SHOP_2\n"
        b"c1,+886900000001,a@example.com,3,0.5,1\n"
        b"c2,,b@example.com,,1e3,0\n"
    )

    # input: the schema file, a NUL, then the CSV
    def call(data: bytes) -> object:
        raw_schema, _, raw_csv = data.partition(b"\x00")
        schema_path.write_bytes(raw_schema)
        csv_path.write_bytes(raw_csv)
        return store.import_table(engine, read_channel_table(csv_path), "shop", clock=_clock)

    return Harness(
        call, [schema + b"\x00" + table], _data_version(work / "import-node.db"), engine.dispose
    )


def _consents_csv(work: Path) -> Harness:
    from accord.data.consents import read_decisions

    path = work / "decisions.csv"
    seed = (
        b"local_ref,purposes,notice_version,collection_method,jurisdiction,expires\n"
        b"c1,marketing;risk-scoring,2026-09,web-form,TW,2027-09-01\n"
        b"c2,marketing,2026-09,web-form,TW,2027-01-31\n"
    )

    def call(data: bytes) -> object:
        path.write_bytes(data)
        return read_decisions(path)

    return Harness(call, [seed])


# ---------------------------------------------------------------------------------------------
# servicers with their stores


def _clock() -> float:
    return float(NOW)


def _store(path: Path, role: Literal["node", "coordinator"]) -> Any:
    from accord.store.engine import make_engine
    from accord.store.migrate import upgrade

    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine, role)
    return engine


def _ledger(work: Path, name: str) -> tuple[Any, Any, Callable[[], None]]:
    """A started coordinator ledger on SQLite; checkpoints only when published here."""
    from accord.coordinator.ledger.log import Ledger
    from accord.crypto.keys import NoteSigner

    signer = NoteSigner.generate(ORIGIN)
    engine = _store(work / name, "coordinator")
    ledger = Ledger(engine, signer, checkpoint_interval_s=3600, clock=_clock)
    ledger.start()

    def close() -> None:
        ledger.stop()
        engine.dispose()

    return ledger, signer, close


def _ledger_rpc(work: Path) -> Harness:
    from accord.consent.events import ConsentGranted, ConsentRevoked, encode
    from accord.coordinator.ledger.server import LedgerServicer
    from accord.proto.v1 import ledger_pb2 as pb

    ledger, _, close = _ledger(work, "ledger.db")
    granted = [
        encode(
            ConsentGranted("pay", bytes([i]) * 32, bytes([i + 1]) * 32, ("marketing",), NOW, NOW)
        )
        for i in range(1, 6)
    ]
    ledger.append(granted, appended_by="pay")
    old = ledger.checkpointer.publish().note
    ledger.append(
        [encode(ConsentRevoked("pay", b"\x01" * 32, b"\x02" * 32, NOW, "withdrawn"))],
        appended_by="pay",
    )
    ledger.checkpointer.publish()
    fresh = encode(ConsentGranted("pay", b"\x09" * 32, b"\x0a" * 32, ("marketing",), NOW, NOW))
    servicer = LedgerServicer(ledger)
    context = _peer("pay")
    methods: list[tuple[type[Message], Callable[[Any], object]]] = [
        (pb.AppendRequest, lambda r: servicer.Append(r, context)),
        (pb.GetInclusionProofRequest, lambda r: servicer.GetInclusionProof(r, context)),
        (pb.GetConsistencyProofRequest, lambda r: servicer.GetConsistencyProof(r, context)),
        (pb.GetEntriesRequest, lambda r: servicer.GetEntries(r, context)),
        (pb.ProveExtendsRequest, lambda r: servicer.ProveExtends(r, context)),
        (pb.GetConsentStatusRequest, lambda r: servicer.GetConsentStatus(r, context)),
    ]
    seeds = [
        b"\x00" + pb.AppendRequest(entries=[fresh]).SerializeToString(),
        b"\x01" + pb.GetInclusionProofRequest(index=2, tree_size=6).SerializeToString(),
        b"\x02" + pb.GetConsistencyProofRequest(size1=3, size2=6).SerializeToString(),
        b"\x03" + pb.GetEntriesRequest(start=1, count=3).SerializeToString(),
        b"\x04" + pb.ProveExtendsRequest(old_checkpoint=old).SerializeToString(),
        b"\x05" + pb.GetConsentStatusRequest(consent=b"\x02" * 32).SerializeToString(),
        b"\x00" + pb.AppendRequest(entries=[DEEP_JSON]).SerializeToString(),
    ]
    return Harness(_dispatch(methods), seeds, _data_version(work / "ledger.db"), close)


def _witness_rpc(work: Path) -> Harness:
    from accord.consent.events import ConsentGranted, encode
    from accord.crypto.keys import NoteSigner
    from accord.node.witness import Witness
    from accord.node.witness_server import WitnessServicer
    from accord.proto.v1 import audit_pb2 as pb

    ledger, signer, close = _ledger(work, "witnessed-ledger.db")
    notes = []
    for i in range(1, 4):
        ledger.append(
            [
                encode(
                    ConsentGranted(
                        "pay", bytes([i]) * 32, bytes([i]) * 32, ("marketing",), NOW, NOW
                    )
                )
            ],
            appended_by="pay",
        )
        notes.append(ledger.checkpointer.publish().note)
    engine = _store(work / "witness-node.db", "node")
    witness = Witness(engine, NoteSigner.generate("accord.fuzz/pay"), [signer.verifier], _clock)
    witness.add_checkpoint(0, notes[0], [])
    servicer = WitnessServicer(witness)
    context = _peer("auditor")
    methods: list[tuple[type[Message], Callable[[Any], object]]] = [
        (pb.GetLatestRequest, lambda r: servicer.GetLatest(r, context)),
        (pb.AddCheckpointRequest, lambda r: servicer.AddCheckpoint(r, context)),
    ]
    _, proof = ledger.consistency_proof(1, 3)
    close()
    seeds = [
        b"\x00" + pb.GetLatestRequest(origin=ORIGIN).SerializeToString(),
        b"\x01"
        + pb.AddCheckpointRequest(
            old_size=1, checkpoint=notes[2], consistency_proof=proof
        ).SerializeToString(),
        b"\x01" + pb.AddCheckpointRequest(old_size=1, checkpoint=notes[0]).SerializeToString(),
    ]
    return Harness(
        _dispatch(methods), seeds, _data_version(work / "witness-node.db"), engine.dispose
    )


def _registry_rpc(work: Path) -> Harness:
    from accord.coordinator.registry import NodeRegistry
    from accord.coordinator.server import RegistryServicer
    from accord.crypto.keys import NoteSigner
    from accord.proto.v1 import registry_pb2 as pb
    from accord.registry import sign_registration
    from accord.rpc.tls import CERT_FILE

    party, ca_pem = _pki(work)
    engine = _store(work / "registry.db", "coordinator")
    registry = NodeRegistry(engine, NoteSigner.generate(ORIGIN), ca_pem=ca_pem, clock=_clock)
    servicer = RegistryServicer(registry, lambda: None)
    context = _peer("pay", (party / CERT_FILE).read_bytes())
    identity = NoteSigner.generate("pay")
    request = sign_registration(_node_registration(work, identity), identity)

    # selector: 0 = Register as received, 1 = GetRegistry, 2 = Register of a registration
    # signed here with the key it names (past the proof of possession)
    def call(data: bytes) -> object:
        if not data:
            raise InvalidInput("empty")
        which = data[0] % 3
        if which == 0:
            return servicer.Register(_decode(pb.RegisterRequest, data[1:]), context)
        if which == 1:
            return servicer.GetRegistry(_decode(pb.GetRegistryRequest, data[1:]), context)
        reg = _decode(pb.NodeRegistration, data[1:])
        reg.identity_key = identity.verifier.public_key
        return servicer.Register(sign_registration(reg, identity), context)

    seeds = [
        b"\x00" + request.SerializeToString(),
        b"\x01",
        b"\x02" + request.registration.SerializeToString(),
    ]
    return Harness(call, seeds, _data_version(work / "registry.db"), engine.dispose)


def _node_rpc(work: Path) -> Harness:
    from accord.crypto.keys import NoteSigner
    from accord.node.keys import load_or_create_keys
    from accord.node.server import NodeServicer
    from accord.node.service import Node
    from accord.proto.v1 import node_pb2, registry_pb2
    from accord.registry import REGISTRY_DOMAIN, sign_registry

    _, ca_pem = _pki(work)
    coordinator = NoteSigner.generate(ORIGIN)
    engine = _store(work / "node.db", "node")
    keys = load_or_create_keys(work / "pay-keys", "pay")
    node = Node(
        engine,
        channel="pay",
        role="feature",
        keys=keys,
        coordinator_key=coordinator.verifier,
        network_ca=ca_pem,
        clock=_clock,
    )
    servicer = NodeServicer(node)
    context = _peer("coordinator")
    document = registry_pb2.RegistryDocument(
        version=2,
        coordinator_key=coordinator.verifier.encode(),
        issued_at=NOW,
        nodes=[
            registry_pb2.RegistryEntry(
                node=_node_registration(work, keys.identity, keys.kx), registered_at=NOW
            )
        ],
    )
    signed = sign_registry(document, coordinator)

    def resigned(body: bytes) -> registry_pb2.SignedRegistry:
        return registry_pb2.SignedRegistry(
            document=body, signature=coordinator.sign(REGISTRY_DOMAIN + body)
        )

    methods: list[tuple[type[Message], Callable[[Any], object]]] = [
        (registry_pb2.SignedRegistry, lambda r: servicer.UpdateRegistry(r, context)),
        (
            registry_pb2.RegistryDocument,
            lambda d: servicer.UpdateRegistry(resigned(d.SerializeToString()), context),
        ),
        (node_pb2.GetNodeInfoRequest, lambda r: servicer.GetNodeInfo(r, context)),
        (node_pb2.ResolveRequest, lambda r: servicer.Resolve(r, context)),
        (node_pb2.IssueTokenRequest, lambda r: servicer.IssueToken(r, context)),
        (node_pb2.ComputeRequest, lambda r: servicer.Compute(r, context)),
        (node_pb2.OwnSpendSumRequest, lambda r: servicer.OwnSpendSum(r, context)),
    ]
    document.version = 1
    seeds = [
        b"\x00" + signed.SerializeToString(),
        b"\x01" + document.SerializeToString(),
        b"\x02",
        b"\x03" + node_pb2.ResolveRequest(token="t" * 16).SerializeToString(),
    ]
    return Harness(_dispatch(methods), seeds, _data_version(work / "node.db"), engine.dispose)


def _alignment_rpc(work: Path) -> Harness:
    """A channel blocking rows (after a revocation) and reading the rows blocked for it."""
    from accord.coordinator.alignment_server import AlignmentServicer
    from accord.coordinator.blocking import RowBlocker
    from accord.coordinator.registry import NodeRegistry
    from accord.crypto.keys import NoteSigner
    from accord.proto.v1 import alignment_pb2 as pb
    from accord.rpc.tls import PartyCredentials

    party, ca_pem = _pki(work)
    engine = _store(work / "blocking.db", "coordinator")
    registry = NodeRegistry(engine, NoteSigner.generate(ORIGIN), ca_pem=ca_pem, clock=_clock)
    credentials = PartyCredentials.load(party.parent / "coordinator")
    blocker = RowBlocker(engine, credentials, registry.view, _clock)
    servicer = AlignmentServicer(None, blocker)  # type: ignore[arg-type]  # runs: not fuzzed
    context = _peer("pay")
    methods: list[tuple[type[Message], Callable[[Any], object]]] = [
        (pb.BlockRequest, lambda r: servicer.Block(r, context)),
        (pb.BlockedRowsRequest, lambda r: servicer.GetBlockedRows(r, context)),
    ]
    seeds = [
        b"\x00" + pb.BlockRequest(row_keys=[b"\x01" * 16, b"\x02" * 16]).SerializeToString(),
        b"\x01",
    ]
    return Harness(_dispatch(methods), seeds, _data_version(work / "blocking.db"), engine.dispose)


class _LedgerClient:
    """A node's ledger client talking to the ledger in this process (no gRPC hop)."""

    def __init__(self, ledger: Any, node: str) -> None:
        self._ledger, self._node = ledger, node

    def append(self, events: Sequence[Any]) -> list[int]:
        from accord.consent.events import encode

        return [a.index for a in self._ledger.append([encode(e) for e in events], self._node)]


def _consent_rpc(work: Path) -> Harness:
    import numpy as np

    from accord.data.channel_file import ChannelTable
    from accord.node import store
    from accord.node.consent import ConsentBook, default_terms
    from accord.node.consent_server import ConsentServicer, terms_to_proto
    from accord.proto.v1 import consent_pb2 as pb

    ledger, signer, close = _ledger(work, "consent-ledger.db")
    engine = _store(work / "consent-node.db", "node")
    refs = [f"c{i}" for i in range(4)]
    table = ChannelTable(
        "pay",
        refs,
        [f"+88690000000{i}" for i in range(4)],
        [f"c{i}@example.com" for i in range(4)],
        {"PAY_0": "int"},
        np.arange(4, dtype=float).reshape(4, 1),
    )
    store.import_table(engine, table, "pay", clock=_clock)
    book = ConsentBook(engine, "pay", _LedgerClient(ledger, "pay"), _clock)
    # the ledger client is used by ExportSubject alone, which calls the ledger over gRPC and
    # is left out here
    servicer = ConsentServicer(book, None, signer.verifier, _clock)  # type: ignore[arg-type]
    context = _peer("pay")
    methods: list[tuple[type[Message], Callable[[Any], object]]] = [
        (pb.GrantConsentRequest, lambda r: servicer.Grant(r, context)),
        (pb.RevokeConsentRequest, lambda r: servicer.Revoke(r, context)),
        (pb.SubjectRequest, lambda r: servicer.Show(r, context)),
        (pb.SubjectRequest, lambda r: servicer.EraseSubject(r, context)),
    ]
    terms = terms_to_proto(default_terms(["marketing", "risk-scoring"], controller="pay", now=NOW))
    seeds = [
        b"\x00"
        + pb.GrantConsentRequest(
            grants=[pb.ConsentGrant(local_ref="c1", terms=terms)]
        ).SerializeToString(),
        b"\x01" + pb.RevokeConsentRequest(local_ref="c1").SerializeToString(),
        b"\x02" + pb.SubjectRequest(local_ref="c2").SerializeToString(),
        b"\x03" + pb.SubjectRequest(local_ref="c3").SerializeToString(),
    ]
    node_state = _data_version(work / "consent-node.db")
    ledger_state = _data_version(work / "consent-ledger.db")

    def stop() -> None:
        close()
        engine.dispose()

    return Harness(_dispatch(methods), seeds, lambda: (node_state(), ledger_state()), stop)


TARGETS: tuple[Target, ...] = (
    Target("note", "C2SP signed note + cosignatures (crypto.note, crypto.cosignature)", _note),
    Target("checkpoint", "C2SP checkpoint text and signed checkpoint", _checkpoint),
    Target("merkle-inclusion", "RFC 9162 inclusion proof file, verified", _inclusion),
    Target(
        "merkle-consistency", "RFC 9162 consistency proof file, read and verified", _consistency
    ),
    Target("tiles", "tlog tile path, tile, entry bundle, root from served tiles", _tiles),
    Target("statusmap", "consent status-map proof JSON, verified", _statusmap),
    Target("consent-event", "ledger entry bytes (accord.consent.events.decode)", _consent_event),
    Target("consent-proof", "offline consent proof document", _consent_proof),
    Target("presentation", "consent presentation JSON + BBS proof", _presentation),
    Target("credential", "credential request commitment / issued credential", _credential),
    Target("sd-jwt", "SD-JWT presentation (node) and holder JWK (coordinator)", _sd_jwt),
    Target("bbs-proof", "raw BBS proof bytes (crypto.bbs.proof_verify)", _bbs_proof),
    Target("registration", "node registration request (coordinator side)", _registration),
    Target("registry", "signed registry bytes, and the signed document", _registry),
    Target("membership", "signed membership list file (members.json)", _membership),
    Target("policy", "scoring policy TOML", _policy),
    Target("purchase-csv", "purchase log CSV import", _purchase_csv),
    Target("consents-csv", "consent decisions CSV import", _consents_csv),
    Target("channel-csv", "channel table CSV + schema, imported into a node store", _channel_csv),
    Target("ledger-rpc", "accord.v1.Ledger requests into the coordinator's ledger", _ledger_rpc),
    Target("witness-rpc", "accord.v1.Witness requests into a node's witness", _witness_rpc),
    Target("registry-rpc", "accord.v1.Registry requests into the registry", _registry_rpc),
    Target("alignment-rpc", "accord.v1.Alignment Block/GetBlockedRows", _alignment_rpc),
    Target("node-rpc", "accord.v1.NodeService requests (UpdateRegistry, ...)", _node_rpc),
    Target("consent-rpc", "accord.v1.Consent requests into a node's consent book", _consent_rpc),
)


def by_name(name: str) -> Target:
    for target in TARGETS:
        if target.name == name:
            return target
    raise KeyError(name)
