"""Blind BBS and per-verifier pseudonym fixtures (BLS12-381-SHA-256), checked byte for byte.

The fixtures in ../shared/vectors/bbs/{blind,pseudonym} come from the drafts' co-author's
reference implementation (Grotto Networking, see LICENSE.grotto there): commitments, blind
signatures and proofs are regenerated with the fixtures' mocked randomness (the ASCII seed and
the DST each fixture names) and compared, every proof is verified, and the pseudonym fixtures'
traces are compared value by value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import SHARED

from accord.crypto.bbs import blind, pseudonym
from accord.crypto.bbs.blind import combined_indexes, prepare_parameters
from accord.crypto.bbs.core import calculate_domain
from accord.crypto.bbs.encoding import octets_to_signature, to_scalar
from accord.crypto.bbs.proof import proof_init
from accord.crypto.bbs.randomness import RandomScalars, seeded, seeded_random_scalars

_BLIND = Path("bbs") / "blind"
_NYM = Path("bbs") / "pseudonym"
_SUITE = "bls12-381-sha-256"


def _cases(base: Path, kind: str) -> list[str]:
    root = SHARED / "vectors" / base / _SUITE
    return sorted(p.relative_to(root).as_posix() for p in root.glob(f"{kind}/*.json"))


BLIND_COMMITS = _cases(_BLIND, "commit")
BLIND_SIGNATURES = _cases(_BLIND, "signature")
BLIND_PROOFS = _cases(_BLIND, "proof")


def _load(vectors_dir: Path, base: Path, rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((vectors_dir / base / _SUITE / rel).read_text())
    return data


def _hex(value: str | None) -> bytes:
    return bytes.fromhex(value or "")


def _int(value: str | None) -> int:
    return int(value or "0", 16)


def _scalar(value: int) -> str:
    return f"{value:064x}"


def _point(point: Any) -> str:
    return str(point.to_compressed_bytes().hex())


def _rng(case: dict[str, Any], step: str) -> RandomScalars:
    params = case["mockRngParameters"]
    return seeded(params["SEED"].encode(), params[step]["DST"].encode())


@pytest.fixture
def blind_messages(vectors_dir: Path) -> tuple[list[bytes], list[bytes]]:
    data = json.loads((vectors_dir / _BLIND / "messages.json").read_text())
    return [_hex(m) for m in data["messages"]], [_hex(m) for m in data["committedMessages"]]


@pytest.fixture
def nym_messages(vectors_dir: Path) -> list[bytes]:
    return [_hex(m) for m in json.loads((vectors_dir / _NYM / "messages.json").read_text())]


def test_every_vector_is_collected(vectors_dir: Path) -> None:
    base = vectors_dir / _BLIND / _SUITE
    for kind, cases, count in (
        ("commit", BLIND_COMMITS, 2),
        ("signature", BLIND_SIGNATURES, 6),
        ("proof", BLIND_PROOFS, 8),
    ):
        assert len(list(base.glob(f"{kind}/*.json"))) == len(cases) == count
    nym = vectors_dir / _NYM / _SUITE
    assert len(list(nym.glob("*/*.json"))) == 3


def test_api_ids_match_the_fixtures(vectors_dir: Path) -> None:
    case = _load(vectors_dir, _NYM, "nymProof/nymProof001.json")
    # The mocked-randomness DSTs name the core suite; the API ids are the drafts' own.
    assert case["mockRngParameters"]["proof"]["DST"].startswith("BBS_BLS12381G1_XMD:SHA-256")
    assert blind.BLIND_API_ID == b"BBS_BLS12381G1_XMD:SHA-256_SSWU_RO_BLIND_H2G_HM2S_"
    assert pseudonym.PSEUDONYM_API_ID == b"BBS_BLS12381G1_XMD:SHA-256_SSWU_RO_H2G_HM2S_PSEUDONYM_"


@pytest.mark.parametrize("rel", BLIND_COMMITS, ids=lambda rel: rel.removesuffix(".json"))
def test_blind_commitment(vectors_dir: Path, rel: str) -> None:
    case = _load(vectors_dir, _BLIND, rel)
    committed = [_hex(m) for m in case["committedMessages"]]
    octets, prover_blind = blind.commit(committed, random_scalars=_rng(case, "commit"))
    assert octets.hex() == case["commitmentWithProof"]
    assert _scalar(prover_blind) == case["proverBlind"]
    generators = blind.blind_generators(len(committed) + 1, blind.BLIND_API_ID)
    commitment = blind.verify_commitment(octets, generators, blind.BLIND_API_ID)
    assert commitment.to_compressed_bytes() == octets[:48]


@pytest.mark.parametrize("rel", BLIND_SIGNATURES, ids=lambda rel: rel.removesuffix(".json"))
def test_blind_signature(vectors_dir: Path, rel: str) -> None:
    case = _load(vectors_dir, _BLIND, rel)
    sk, pk = _hex(case["signerKeyPair"]["secretKey"]), _hex(case["signerKeyPair"]["publicKey"])
    header = _hex(case["header"])
    messages = [_hex(m) for m in case["messages"]]
    committed = [_hex(m) for m in case.get("committedMessages") or []]
    signature = blind.blind_sign(sk, pk, _hex(case["commitmentWithProof"]), header, messages)
    assert signature.hex() == case["signature"]
    blind.blind_verify(pk, signature, header, messages, committed, _int(case["proverBlind"]))
    # The trace: the domain (over the signer's and the blind generators) and B with it.
    given = blind.signing_input(
        pk, sk, _hex(case["commitmentWithProof"]), messages, blind.BLIND_API_ID
    )
    generators = [*given.generators, *given.blind_gens]
    assert len(generators) == len(messages) + len(committed) + 2
    domain = calculate_domain(pk, generators, header, blind.BLIND_API_ID)
    b = given.base + given.generators[0] * to_scalar(domain)
    trace = case["trace"]
    if len(trace["domain"]) == 96:
        # signature003's trace is mislabelled: its "domain" holds B (a point, not a scalar).
        assert trace["domain"] == _point(b)
    else:
        assert (_scalar(domain), _point(b)) == (trace["domain"], trace["B"])


@pytest.mark.parametrize("rel", BLIND_PROOFS, ids=lambda rel: rel.removesuffix(".json"))
def test_blind_proof(
    vectors_dir: Path, blind_messages: tuple[list[bytes], list[bytes]], rel: str
) -> None:
    case = _load(vectors_dir, _BLIND, rel)
    messages, committed = blind_messages
    pk, header, ph = (_hex(case[k]) for k in ("signerPublicKey", "header", "presentationHeader"))
    shown: dict[str, str] = case["revealedMessages"]
    shown_committed: dict[str, str] | None = case["revealedCommittedMessages"]
    indexes = [int(i) for i in shown]
    committed_indexes = [int(j) for j in shown_committed or {}]
    proof = blind.blind_proof_gen(
        pk,
        _hex(case["signature"]),
        header,
        ph,
        messages,
        committed if shown_committed is not None else [],
        indexes,
        committed_indexes,
        _int(case["proverBlind"]),
        random_scalars=_rng(case, "proof"),
    )
    assert proof.hex() == case["proof"]
    blind.blind_proof_verify(
        pk,
        proof,
        header,
        ph,
        case["L"],
        [_hex(m) for m in shown.values()],
        [_hex(m) for m in (shown_committed or {}).values()],
        indexes,
        committed_indexes,
    )


def test_nym_commitment(vectors_dir: Path) -> None:
    case = _load(vectors_dir, _NYM, "nymCommit/nym_commit001.json")
    octets, prover_blind = pseudonym.nym_commit(
        [_hex(m) for m in case["committedMessages"]],
        _int(case["proverNym"]),
        random_scalars=_rng(case, "commit"),
    )
    assert octets.hex() == case["commitmentWithProof"]
    assert _scalar(prover_blind) == case["proverBlind"] == case["trace"]["secret_prover_blind"]
    assert octets[:48].hex() == case["trace"]["C"]
    count = case["mockRngParameters"]["commit"]["count"]
    scalars = seeded_random_scalars(
        case["mockRngParameters"]["SEED"].encode(),
        count,
        case["mockRngParameters"]["commit"]["DST"].encode(),
    )
    assert [_scalar(s) for s in scalars[1:]] == [
        case["trace"]["s_tilde"],
        *case["trace"]["m_tildes"],
    ]


def test_nym_signature(vectors_dir: Path, nym_messages: list[bytes]) -> None:
    case = _load(vectors_dir, _NYM, "nymSignature/nymSignature001.json")
    sk, pk = _hex(case["signerKeyPair"]["secretKey"]), _hex(case["signerKeyPair"]["publicKey"])
    header = _hex(case["header"])
    signature, entropy = pseudonym.blind_sign_with_nym(
        sk,
        pk,
        _hex(case["commitmentWithProof"]),
        header,
        nym_messages,
        _int(case["signer_nym_entropy"]),
    )
    assert signature.hex() == case["signature"]
    trace = case["trace"]
    parsed = octets_to_signature(signature)
    assert (_point(parsed.a), _scalar(parsed.e)) == (trace["A"], trace["e"])
    nym_secret = pseudonym.blind_verify_with_nym(
        pk,
        signature,
        header,
        nym_messages,
        [],
        _int(case["proverNym"]),
        entropy,
        _int(case["proverBlind"]),
    )
    assert _scalar(nym_secret) == case["nym_secret"]
    blind_gens = blind.blind_generators(2, pseudonym.PSEUDONYM_API_ID)
    assert _point(blind_gens[0]) == trace["Q_2"]
    assert len(nym_messages) + 1 + len(blind_gens) == trace["allGenLen"]


def test_nym_proof(vectors_dir: Path, nym_messages: list[bytes]) -> None:
    case = _load(vectors_dir, _NYM, "nymProof/nymProof001.json")
    pk, header, ph, context_id = (
        _hex(case[k]) for k in ("signerPublicKey", "header", "presentationHeader", "context_id")
    )
    indexes: list[int] = case["disclosedIndexes"]
    assert case["disclosedComIndexes"] == [] and len(nym_messages) == case["L"]
    proof, nym = pseudonym.proof_gen_with_nym(
        pk,
        _hex(case["signature"]),
        header,
        ph,
        _int(case["nym_secret"]),
        context_id,
        nym_messages,
        [],
        indexes,
        [],
        _int(case["proverBlind"]),
        random_scalars=_rng(case, "proof"),
    )
    assert proof.hex() == case["proof"]
    assert nym.hex() == case["pseudonym"] == case["trace"]["pseudonym"]
    assert pseudonym.pseudonym_for(_int(case["nym_secret"]), context_id) == nym
    pseudonym.proof_verify_with_nym(
        pk,
        proof,
        header,
        ph,
        nym,
        context_id,
        case["L"],
        [nym_messages[i] for i in indexes],
        [],
        indexes,
        [],
    )

    # The trace: signed scalars, ProofInit's points, OP and Ut, and the challenge.
    trace = case["trace"]
    scalars, generators = prepare_parameters(
        nym_messages,
        [],
        len(nym_messages) + 1,
        2,
        _int(case["proverBlind"]),
        pseudonym.PSEUDONYM_API_ID,
    )
    scalars.append(_int(case["nym_secret"]))
    assert [_scalar(s) for s in scalars] == trace["msg_scalars"]
    combined = combined_indexes(len(nym_messages), indexes, [])
    undisclosed = [j for j in range(len(scalars)) if j not in combined]
    randoms = seeded_random_scalars(
        case["mockRngParameters"]["SEED"].encode(),
        len(undisclosed) + 5,
        case["mockRngParameters"]["proof"]["DST"].encode(),
    )
    named = trace["randomScalars"]
    assert [_scalar(s) for s in randoms] == [
        *(named[k] for k in ("r1", "r2", "eTilde", "r1Tilde", "r3Tilde")),
        *named["m_tilde_scalars"],
    ]
    init = proof_init(
        pk,
        octets_to_signature(_hex(case["signature"])),
        generators,
        randoms,
        header,
        scalars,
        undisclosed,
        pseudonym.PSEUDONYM_API_ID,
    )
    assert [_point(p) for p in (init.abar, init.bbar, init.d, init.t1, init.t2)] == [
        trace[k] for k in ("Abar", "Bbar", "D", "T1", "T2")
    ]
    assert _scalar(init.domain) == trace["domain"]
    op = pseudonym.context_point(context_id)
    assert _point(op) == trace["OP"]
    assert _point(op * to_scalar(randoms[-1])) == trace["Ut"]
    assert proof[-32:].hex() == trace["challenge"]
