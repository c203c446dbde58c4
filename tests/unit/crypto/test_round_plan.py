"""The round plan a node checks and binds into its masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.crypto import masking
from accord.crypto.errors import MalformedInput
from accord.crypto.round_plan import bind_round_plan, check_round_plan

RID = masking.derive_round_id(b"run", 1, 0, ["a", "b"])
PLAN = {"a": np.array([0, 1, 2]), "b": np.array([0, 1, 2])}


def test_the_binding_changes_with_every_part_of_the_plan() -> None:
    base = bind_round_plan(RID, "embedding", 3, PLAN)
    assert len(base) == 32
    assert bind_round_plan(RID, "embedding", 3, dict(reversed(PLAN.items()))) == base
    others = [
        bind_round_plan(masking.derive_round_id(b"run", 2, 0, ["a", "b"]), "embedding", 3, PLAN),
        bind_round_plan(RID, "score", 3, PLAN),
        bind_round_plan(RID, "embedding", 4, PLAN),
        bind_round_plan(RID, "embedding", 3, {"a": PLAN["a"], "b": np.array([0, 1])}),
        bind_round_plan(RID, "embedding", 3, {"a": PLAN["a"], "c": PLAN["b"]}),
        bind_round_plan(RID, "embedding", 3, {"a": PLAN["a"], "b": np.array([0, 2, 1])}),
    ]
    assert len({base, *others}) == len(others) + 1


def test_a_node_answers_only_rows_with_k_contributors() -> None:
    np.testing.assert_array_equal(check_round_plan("a", 3, PLAN), [0, 1, 2])
    with pytest.raises(MalformedInput, match="1 of the rows 'a' would fill have fewer than 2"):
        check_round_plan("a", 3, {"a": np.array([0, 1, 2]), "b": np.array([0, 1])})
    # b's own rows are all shared, so b may answer the same plan
    np.testing.assert_array_equal(
        check_round_plan("b", 3, {"a": np.array([0, 1, 2]), "b": np.array([0, 1])}), [0, 1]
    )
    with pytest.raises(MalformedInput, match="fewer than 3"):
        check_round_plan("a", 3, PLAN, k=3)


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        ({"a": np.array([0, 1])}, "names 2..16 nodes"),
        ({"b": np.array([0]), "c": np.array([0])}, "not a participant"),
        ({"a": np.array([0, 3]), "b": np.array([0, 3])}, "outside the round"),
        ({"a": np.array([-1]), "b": np.array([0])}, "outside the round"),
        ({"a": np.array([1, 1]), "b": np.array([1])}, "twice"),
        ({"a": np.array([[0]]), "b": np.array([0])}, "list of row numbers"),
        ({"a": np.array([0.5]), "b": np.array([0])}, "list of row numbers"),
        ({"": np.array([0]), "a": np.array([0])}, "non-empty name"),
    ],
)
def test_malformed_plans_are_refused_with_the_reason(plan: dict, reason: str) -> None:
    with pytest.raises(MalformedInput, match=reason):
        check_round_plan("a", 3, plan)


@given(
    st.lists(st.booleans(), min_size=1, max_size=40),
    st.lists(st.booleans(), min_size=1, max_size=40),
)
def test_what_a_node_fills_is_exactly_its_plan_when_every_row_is_shared(
    a: list[bool], b: list[bool]
) -> None:
    n = max(len(a), len(b))
    fa = np.flatnonzero(np.resize(a, n))
    fb = np.flatnonzero(np.resize(b, n))
    plan = {"a": fa, "b": fb}
    if set(fa) <= set(fb):
        np.testing.assert_array_equal(check_round_plan("a", n, plan), fa)
    else:
        with pytest.raises(MalformedInput):
            check_round_plan("a", n, plan)
