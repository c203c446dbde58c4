"""Ephemeral relationship credentials: SD-JWT (RFC 9901) with key binding.

The coordinator issues, for one scoring request, an SD-JWT signed with its Ed25519 key
(``alg: EdDSA``) that lives minutes and names: the audience (the nodes asked), the purposes,
the touchpoint, the model, the request id, and ``cnf.jwk``, the touchpoint's own P-256 key
(device binding). Each node's part, ``{"rowKey": HPKE-sealed to that node, "nonce": …}``, is a
separate selectively disclosable claim under ``nodes``: a node sees only its own part, and the
sealed row key opens only with its X25519 key. No static customer identifier appears anywhere,
and every part is fresh per credential (HPKE ephemeral keys, disclosure salts, nonces, holder
key), so two credentials for one customer cannot be linked by a third party.

The touchpoint presents to each node that node's disclosure plus a key-binding JWT
(``aud`` = the node, ``nonce`` = the node's nonce from its disclosure, ``sd_hash``). Any
SD-JWT library can verify these; we use ``sd-jwt`` (OpenWallet Foundation) over ``jwcrypto``
and always ask it to check key binding (it checks it only when given ``expected_aud`` and
``expected_nonce``), then check expiry, audience and purpose ourselves (it does not).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwcrypto.common import JWException
from jwcrypto.jwk import JWK
from sd_jwt.common import SDObj
from sd_jwt.holder import SDJWTHolder
from sd_jwt.issuer import SDJWTIssuer
from sd_jwt.verifier import SDJWTVerifier

from accord.crypto.errors import CryptoError
from accord.crypto.keys import KeyAgreementKey, NoteSigner, NoteVerifier
from accord.crypto.sealing import open_sealed, seal
from accord.errors import InvalidInput, NotAuthenticated, NotPermitted

LIFETIME_S = 300
CLOCK_SKEW_S = 30
MAX_PRESENTATION = 16 * 1024
SEAL_INFO = b"accord-row-key-v1"


class CredentialRejected(NotAuthenticated):
    """The credential failed a check; the message says which."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Parsed once per key: jwcrypto keeps the parsed key inside the JWK, so reusing the object
# saves re-deriving it on every credential. The objects are only read (sign/verify) after this.
@functools.lru_cache(maxsize=8)
def issuer_jwk(signer: NoteSigner) -> JWK:
    return JWK.from_pyca(Ed25519PrivateKey.from_private_bytes(signer.seed))


@functools.lru_cache(maxsize=32)
def verifier_jwk(verifier: NoteVerifier) -> JWK:
    return JWK.from_pyca(Ed25519PublicKey.from_public_bytes(verifier.public_key))


def new_holder_key() -> JWK:
    """A touchpoint's key for one request (P-256, the curve devices and WebAuthn use)."""
    return JWK.generate(kty="EC", crv="P-256")


def holder_public_json(key: JWK) -> str:
    return str(key.export_public())


@dataclass(frozen=True)
class Issued:
    credential: str
    nonces: dict[str, str]
    expires: int


def issue(
    signer: NoteSigner,
    *,
    request_id: str,
    purposes: list[str],
    touchpoint: str,
    model: str,
    nodes: dict[str, tuple[bytes, bytes]],
    holder_jwk: str,
    now: int,
) -> Issued:
    """``nodes``: each node's X25519 public key and its row key for this customer."""
    try:
        holder = JWK.from_json(holder_jwk)
    except (
        JWException,
        ValueError,
        TypeError,
        KeyError,
    ) as exc:  # KeyError: a field of another kty
        raise InvalidInput("holder_jwk is not a JWK") from exc
    if holder.get("kty") != "EC" or holder.get("crv") != "P-256" or holder.has_private:
        raise InvalidInput("holder_jwk must be a public P-256 (EC) key")
    nonces = {n: _b64(secrets.token_bytes(16)) for n in nodes}
    parts = {
        SDObj(n): {"rowKey": _b64(seal(pub, key, info=SEAL_INFO + n.encode())), "nonce": nonces[n]}
        for n, (pub, key) in nodes.items()
    }
    claims: dict[Any, Any] = {
        "iss": signer.name,
        "iat": now,
        "exp": now + LIFETIME_S,
        "aud": sorted(nodes),
        "jti": request_id,
        "purposes": purposes,
        "touchpoint": touchpoint,
        "model": model,
        "nodes": parts,
    }
    issuer = SDJWTIssuer(claims, issuer_jwk(signer), holder_key=holder, sign_alg="EdDSA")
    return Issued(issuer.sd_jwt_issuance, nonces, now + LIFETIME_S)


def _disclosed_node_nonce(credential: str, node: str) -> str:
    """The nonce of ``node``'s part, read from the issuance (the holder's own view)."""
    for part in credential.split("~")[1:]:
        if not part:
            continue
        try:
            salt_name_value = json.loads(_unb64(part))
        except (ValueError, binascii.Error, RecursionError):
            continue
        if (
            isinstance(salt_name_value, list)
            and len(salt_name_value) == 3
            and salt_name_value[1] == node
        ):
            return str(salt_name_value[2]["nonce"])
    raise InvalidInput(f"the credential has no part for node {node!r}")


def node_nonce(credential: str, node: str) -> str:
    """The request's nonce for ``node``: a customer's consent proof for that node is bound to it
    (:func:`accord.consent.credential.presentation_header`)."""
    return _disclosed_node_nonce(credential, node)


def present(credential: str, node: str, holder_key: JWK) -> str:
    """The touchpoint's presentation to one node: its disclosure and a key-binding JWT."""
    holder = SDJWTHolder(credential)
    holder.create_presentation(
        {"nodes": {node: True}},
        nonce=_disclosed_node_nonce(credential, node),
        aud=node,
        holder_key=holder_key,
        sign_alg="ES256",
    )
    return str(holder.sd_jwt_presentation)


@dataclass(frozen=True)
class VerifiedCredential:
    request_id: str
    purposes: tuple[str, ...]
    touchpoint: str
    model: str
    row_key: bytes
    nonce: str
    expires: int
    # every node the coordinator found holding the customer (a node answers alone only when
    # it is the only one: otherwise its own estimate would stand in for a shared sum)
    audience: tuple[str, ...] = ()


class ReplayCache:
    """Nonces seen until their credential can no longer be accepted, in memory: a presentation
    is accepted once per phase while this process lives. Nodes keep theirs in their store
    (:class:`accord.node.replay_cache.UsedCredentials`), which survives a restart."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def use(self, nonce: str, phase: str, expires: int, now: int) -> None:
        if expires < now:
            raise CredentialRejected(f"credential expired at {expires}")
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: e for k, e in self._seen.items() if e >= now - CLOCK_SKEW_S}
            if (nonce, phase) in self._seen:
                raise CredentialRejected(
                    f"credential replayed: its nonce was already used for {phase}"
                )
            self._seen[(nonce, phase)] = expires


def verify(
    presentation: str,
    *,
    node: str,
    kx_key: KeyAgreementKey,
    issuer: NoteVerifier,
    purpose: str,
    now: int,
) -> VerifiedCredential:
    """Check signature, key binding (holder, aud, nonce), expiry, audience, purpose; open."""
    if len(presentation) > MAX_PRESENTATION or presentation.count("~") < 2:
        raise InvalidInput("not an SD-JWT presentation with key binding")
    parts = presentation.split("~")
    nonce = None
    for part in parts[1:-1]:
        try:
            salt_name_value = json.loads(_unb64(part))
        except (ValueError, binascii.Error, RecursionError) as exc:  # RecursionError: nesting
            raise CredentialRejected("credential tampered: a disclosure does not decode") from exc
        if (
            isinstance(salt_name_value, list)
            and len(salt_name_value) == 3
            and salt_name_value[1] == node
        ):
            value = salt_name_value[2]
            nonce = value.get("nonce") if isinstance(value, dict) else None
    if not isinstance(nonce, str):
        raise CredentialRejected(
            f"credential not addressed to {node!r}: it discloses no part for it"
        )
    key = verifier_jwk(issuer)
    try:
        checked = SDJWTVerifier(
            presentation, lambda iss, header: key, expected_aud=node, expected_nonce=nonce
        )
        payload = checked.get_verified_payload()
    except (JWException, ValueError, KeyError, TypeError) as exc:
        reason = str(exc)
        if "audience" in reason:
            raise CredentialRejected(
                f"key-binding proof is for another audience, not {node!r}"
            ) from exc
        if "nonce" in reason:
            raise CredentialRejected("key-binding proof carries the wrong nonce") from exc
        if "holder" in reason or "typ" in reason or "digest" in reason:
            raise CredentialRejected(f"key-binding proof does not verify: {reason}") from exc
        raise CredentialRejected(
            "credential signature or key-binding signature does not verify (tampered, or "
            "not signed by the touchpoint's key)"
        ) from exc
    if payload.get("iss") != issuer.name:
        raise CredentialRejected("credential issued by someone else than the coordinator")
    # No grace past expiry: a replay cache keeps a use until exp + CLOCK_SKEW_S, so whatever it
    # has pruned can no longer be accepted. Skew is allowed only on iat, where it opens nothing.
    if int(payload.get("exp", 0)) < now:
        raise CredentialRejected(f"credential expired at {payload.get('exp')}")
    if int(payload.get("iat", 0)) > now + CLOCK_SKEW_S:
        raise CredentialRejected("credential issued in the future")
    if node not in payload.get("aud", []):
        raise CredentialRejected(f"credential's audience does not include {node!r}")
    purposes = tuple(str(p) for p in payload.get("purposes", []))
    if purpose not in purposes:
        raise NotPermitted(
            f"credential does not cover purpose {purpose!r} (it covers {', '.join(purposes)})"
        )
    part = payload.get("nodes", {}).get(node)
    if not isinstance(part, dict) or part.get("nonce") != nonce:
        raise CredentialRejected(f"credential not addressed to {node!r}")
    try:
        row_key = open_sealed(kx_key, _unb64(str(part["rowKey"])), info=SEAL_INFO + node.encode())
    except (CryptoError, binascii.Error, KeyError) as exc:
        raise CredentialRejected("the row key sealed to this node does not open") from exc
    return VerifiedCredential(
        str(payload.get("jti")),
        purposes,
        str(payload.get("touchpoint")),
        str(payload.get("model")),
        row_key,
        nonce,
        int(payload["exp"]),
        tuple(sorted(str(a) for a in payload.get("aud", []))),
    )


def now_s() -> int:
    return int(time.time())
