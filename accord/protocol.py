"""Wire names and round ids both sides of an exchange use: one definition each, no torch and no
services, so that a node, the coordinator and the training code agree by importing them."""

from __future__ import annotations

from collections.abc import Sequence

from accord.crypto import masking

PLAN_ARRAY = "plan:"
"""Prefix of the ArrayRecord entries of a ``query.embed`` message that carry each
participant's positions (``plan:<node>``): every node receives the whole round plan."""

TRAIN_PURPOSE = "split-train"
"""Masking purpose of training rounds."""
SCORE_PURPOSE = "split-score"
"""Masking purpose of scoring rounds (and of a training run's held-out scoring)."""

TICKET_DOMAIN = b"accord.v1.AlignmentTicket\n"
"""Domain separation of the coordinator's signature on an alignment ticket."""


def score_round_id(request_id: str, participants: Sequence[str]) -> bytes:
    """The masking round of one scoring request: every participant derives the same id."""
    return masking.derive_round_id(request_id.encode(), 0, 0, participants)


__all__ = ["PLAN_ARRAY", "SCORE_PURPOSE", "TICKET_DOMAIN", "TRAIN_PURPOSE", "score_round_id"]
