"""The consent ledger: an RFC 9162 Merkle log with C2SP signed checkpoints and tlog tiles.

Kept in separate steps, as Tessera does: the *sequencer* assigns indexes and commits entries
with the new subtree hashes in one transaction (group commit); the *checkpointer* signs and
publishes checkpoints and tiles; the *store* is the only part that knows SQL.
"""
