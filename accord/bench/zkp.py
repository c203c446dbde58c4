"""`accord bench zkp`: BBS sign, prove and verify over 10 messages, 1..10 of them disclosed.

Everything is timed in one run on one key: ``sign_ms`` (a signature over 10 messages),
``prove_ms`` and ``verify_ms`` (a proof disclosing 1 of the 10, bound to a fresh presentation
header each time), ``proof_bytes`` (its size), and the same three figures for every count of
disclosed messages in ``by_disclosed``. Two comparisons in the same run: ``pairing_floor_ms``,
the one two-pairing product check every verification ends with (no verifier can go below it),
and ``reference_verify_ms``, the same proofs verified by the pure-Python py-ecc reference, which
must accept every proof the fast path made. Times are medians over ``runs`` repetitions.

Wall-clock times include waiting for a CPU, which on a shared machine can dominate; the
``*_cpu_ms`` keys are the same operations in this process's CPU time (every thread), the cost a
verifier pays. ``consent_verify_ms`` is a node's check of a customer's consent proof
(:func:`accord.consent.credential.verify_presentation`: the credential's 10 messages and the
holder secret, 3 disclosed), the figure each proven use costs.
"""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

from accord.crypto import bbs
from accord.crypto.bbs.reference import reference_proof_verify
from accord.errors import ConfigError

MESSAGES = 10
HEADER = b"accord bench zkp"


@dataclass(frozen=True)
class DisclosureTiming:
    disclosed: int
    prove_ms: float
    verify_ms: float
    proof_bytes: int
    proof: bytes  # the first proof made and its presentation header, for the reference
    ph: bytes
    prove_cpu_ms: float = 0.0
    verify_cpu_ms: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "disclosed": self.disclosed,
            "prove_ms": round(self.prove_ms, 3),
            "verify_ms": round(self.verify_ms, 3),
            "prove_cpu_ms": round(self.prove_cpu_ms, 3),
            "verify_cpu_ms": round(self.verify_cpu_ms, 3),
            "proofs_per_s": round(1000 / self.prove_ms, 1),
            "verifies_per_s": round(1000 / self.verify_ms, 1),
            "proof_bytes": self.proof_bytes,
        }


@dataclass(frozen=True)
class ZkpBench:
    runs: int
    reference_runs: int
    sign_ms: float
    pairing_floor_ms: float
    reference_verify_ms: float
    by_disclosed: tuple[DisclosureTiming, ...]
    sign_cpu_ms: float = 0.0
    consent_verify_ms: float = 0.0
    consent_verify_cpu_ms: float = 0.0

    def as_json(self) -> dict[str, object]:
        one = self.by_disclosed[0]
        return {
            "messages": MESSAGES,
            "runs": self.runs,
            "reference_runs": self.reference_runs,
            "sign_ms": round(self.sign_ms, 3),
            "signs_per_s": round(1000 / self.sign_ms, 1),
            "prove_ms": round(one.prove_ms, 3),
            "verify_ms": round(one.verify_ms, 3),
            "sign_cpu_ms": round(self.sign_cpu_ms, 3),
            "prove_cpu_ms": round(one.prove_cpu_ms, 3),
            "verify_cpu_ms": round(one.verify_cpu_ms, 3),
            "consent_verify_ms": round(self.consent_verify_ms, 3),
            "consent_verify_cpu_ms": round(self.consent_verify_cpu_ms, 3),
            "proof_bytes": one.proof_bytes,
            "proofs_per_s": round(1000 / one.prove_ms, 1),
            "verifies_per_s": round(1000 / one.verify_ms, 1),
            "pairing_floor_ms": round(self.pairing_floor_ms, 3),
            "verify_over_floor": round(one.verify_ms / self.pairing_floor_ms, 2),
            "reference_verify_ms": round(self.reference_verify_ms, 1),
            "reference_over_fast": round(self.reference_verify_ms / one.verify_ms, 1),
            "by_disclosed": [t.as_json() for t in self.by_disclosed],
        }


def _median_ms(runs: int, work: Callable[[int], object]) -> float:
    return _medians_ms(runs, work)[0]


def _medians_ms(runs: int, work: Callable[[int], object]) -> tuple[float, float]:
    """Median wall-clock and median CPU time (this process, every thread) of ``work``."""
    wall, cpu = [], []
    for i in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        work(i)
        cpu.append((time.process_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def _pairing_floor_ms(runs: int) -> float:
    a = G1Point() * Scalar(secrets.randbelow(bbs.suite.R - 1) + 1)
    w = G2Point() * Scalar(secrets.randbelow(bbs.suite.R - 1) + 1)
    return _median_ms(runs, lambda _: GT.pairing_check([a, -a], [w, w]))


def _time_disclosure(
    pk: bytes, signature: bytes, messages: list[bytes], disclosed: int, runs: int
) -> DisclosureTiming:
    indexes = list(range(disclosed))
    shown = messages[:disclosed]
    headers = [secrets.token_bytes(16) for _ in range(runs)]
    proofs: list[bytes] = []
    prove_ms, prove_cpu_ms = _medians_ms(
        runs,
        lambda i: proofs.append(
            bbs.proof_gen(pk, signature, HEADER, headers[i], messages, indexes)
        ),
    )
    verify_ms, verify_cpu_ms = _medians_ms(
        runs, lambda i: bbs.proof_verify(pk, proofs[i], HEADER, headers[i], shown, indexes)
    )
    return DisclosureTiming(
        disclosed,
        prove_ms,
        verify_ms,
        len(proofs[0]),
        proofs[0],
        headers[0],
        prove_cpu_ms,
        verify_cpu_ms,
    )


def _consent_verify_ms(sk: bytes, pk: bytes, runs: int) -> tuple[float, float]:
    """A node's check of one consent proof, over a credential issued as a channel issues it."""
    from accord.consent import credential
    from accord.consent.vocabulary import PURPOSES
    from accord.wallet import holder
    from accord.wallet.store import Wallet

    now = int(time.time())
    wallet = Wallet(secrets.token_bytes(32).hex())
    asked = holder.request(wallet, "shop")
    fields = credential.CredentialFields(
        "shop", credential.credential_expiry(now, now + 30 * 86400), "2026-09", "TW", PURPOSES
    )
    signature, signed = credential.issue(sk, pk, asked.commitment, fields)
    holder.accept(wallet, asked.request_id, pk, signature, signed)
    nonces = [secrets.token_bytes(16) for _ in range(runs)]
    shown = [holder.present(wallet, "shop", PURPOSES[0], n, "shop", now) for n in nonces]
    return _medians_ms(
        runs,
        lambda i: credential.verify_presentation(
            pk,
            shown[i],
            channel="shop",
            purpose=PURPOSES[0],
            nonce=nonces[i],
            audience="shop",
            now=now,
        ),
    )


def run_zkp_bench(runs: int, reference_runs: int) -> ZkpBench:
    if runs < 1 or reference_runs < 1:
        raise ConfigError("--runs and --reference-runs must be positive")
    sk = bbs.key_gen(secrets.token_bytes(32))
    pk = bbs.sk_to_pk(sk)
    messages = [f"message {i}: {secrets.token_hex(8)}".encode() for i in range(MESSAGES)]
    # Warm the generator cache and the binding once, outside every timing.
    signature = bbs.sign(sk, pk, HEADER, messages)
    sign_ms, sign_cpu_ms = _medians_ms(
        runs, lambda i: bbs.sign(sk, pk, HEADER + bytes([i % 256]), messages)
    )

    timings = [
        _time_disclosure(pk, signature, messages, disclosed, runs)
        for disclosed in range(1, MESSAGES + 1)
    ]
    one = timings[0]
    reference_ms = _median_ms(
        reference_runs,
        lambda _: reference_proof_verify(pk, one.proof, HEADER, one.ph, messages[:1], [0]),
    )
    consent_ms, consent_cpu_ms = _consent_verify_ms(sk, pk, runs)
    return ZkpBench(
        runs,
        reference_runs,
        sign_ms,
        _pairing_floor_ms(runs),
        reference_ms,
        tuple(timings),
        sign_cpu_ms,
        consent_ms,
        consent_cpu_ms,
    )
