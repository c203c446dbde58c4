"""Wire names both sides of a training exchange use (no torch, no services)."""

from __future__ import annotations

PLAN_ARRAY = "plan:"
"""Prefix of the ArrayRecord entries of a ``query.embed`` message that carry each
participant's positions (``plan:<node>``): every node receives the whole round plan."""

__all__ = ["PLAN_ARRAY"]
