"""BBS signatures over BLS12-381 (draft-irtf-cfrg-bbs-signatures, BLS12-381-SHA-256 suite).

A signer signs a list of messages under one header; the holder later proves knowledge of that
signature while disclosing only some messages, bound to a presentation header of their choice.
Two proofs from one signature are unlinkable. Curve arithmetic and pairings come from the
arkworks binding (``py_arkworks_bls12381``); :mod:`.reference` re-checks proofs over ``py_ecc``.
Verifiers raise :class:`accord.crypto.errors.BbsVerificationError`; they never return ``False``.

This package only re-exports; each part lives in its own module:

- :mod:`.suite`: ciphersuite identifiers, sizes, the constants P1 and BP2.
- :mod:`.hashing`: expand_message_xmd, hash_to_scalar, messages_to_scalars, hash_to_curve_g1.
- :mod:`.generators`: create_generators.
- :mod:`.encoding`: strict (de)serialisation of keys, signatures and proofs.
- :mod:`.keys`: KeyGen and SkToPk.
- :mod:`.core`: Sign and Verify.
- :mod:`.randomness`: ProofGen's random scalars and the draft's seeded mock.
- :mod:`.proof`: ProofGen and ProofVerify.
- :mod:`.blind`: blind signatures (draft-kalos-bbs-blind-signatures): Commit, BlindSign,
  BlindVerify and proofs over committed messages the signer never saw.
- :mod:`.pseudonym`: per-verifier pseudonyms over blind signatures
  (draft-irtf-cfrg-bbs-per-verifier-linkability): NymCommit, BlindSignWithNym and proofs that
  show one stable pseudonym per verifier context.
"""

from accord.crypto.bbs.core import calculate_domain, sign, verify
from accord.crypto.bbs.generators import create_generators
from accord.crypto.bbs.hashing import (
    expand_message_xmd,
    hash_to_curve_g1,
    hash_to_scalar,
    messages_to_scalars,
)
from accord.crypto.bbs.keys import SECRET_KEY_LENGTH, key_gen, sk_to_pk
from accord.crypto.bbs.proof import proof_gen, proof_verify
from accord.crypto.bbs.randomness import (
    RandomScalars,
    calculate_random_scalars,
    seeded,
    seeded_random_scalars,
)
from accord.crypto.bbs.suite import (
    API_ID,
    CIPHERSUITE_ID,
    PUBLIC_KEY_LENGTH,
    SIGNATURE_LENGTH,
)

__all__ = [
    "API_ID",
    "CIPHERSUITE_ID",
    "PUBLIC_KEY_LENGTH",
    "SECRET_KEY_LENGTH",
    "SIGNATURE_LENGTH",
    "RandomScalars",
    "calculate_domain",
    "calculate_random_scalars",
    "create_generators",
    "expand_message_xmd",
    "hash_to_curve_g1",
    "hash_to_scalar",
    "key_gen",
    "messages_to_scalars",
    "proof_gen",
    "proof_verify",
    "seeded",
    "seeded_random_scalars",
    "sign",
    "sk_to_pk",
    "verify",
]
