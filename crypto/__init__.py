"""Pure cryptographic building blocks of Accord: no I/O, no clocks, no global randomness.

Functions that need time or randomness take them as parameters so tests control them.
Verifiers raise :class:`accord.crypto.errors.VerificationError`; they never return ``False``.
"""
