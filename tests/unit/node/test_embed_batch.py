"""Concurrent scoring requests' rows share a forward pass; each caller gets its own rows."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from accord.node.embed_batch import BatchedForward


class SlowForward:
    """A row-wise function whose first pass waits until released, so callers queue."""

    def __init__(self, fail: bool = False) -> None:
        self.passes: list[int] = []
        self.release = threading.Event()
        self.fail = fail

    def __call__(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        first = not self.passes
        self.passes.append(len(x))
        if first:
            self.release.wait(5)
        if self.fail:
            raise ValueError("bad model")
        return (x * 2 + 1).astype(np.float32)


def _call_many(forward: SlowForward, rows: list[npt.NDArray[np.float64]]) -> list[object]:
    batched = BatchedForward(forward)

    def call(x: npt.NDArray[np.float64]) -> object:
        try:
            return batched(x)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(rows)) as pool:
        futures = [pool.submit(call, rows[0])]
        while not forward.passes:
            threading.Event().wait(0.01)
        futures += [pool.submit(call, r) for r in rows[1:]]
        threading.Event().wait(0.2)  # the others queue behind the first pass
        forward.release.set()
        return [f.result(10) for f in futures]


def test_queued_rows_go_through_one_pass_and_come_back_to_their_callers() -> None:
    forward = SlowForward()
    rows = [np.full((1, 3), float(i)) for i in range(8)]
    results = _call_many(forward, rows)
    assert len(forward.passes) == 2 and forward.passes[1] == 7  # the first alone, then 7 together
    for x, out in zip(rows, results, strict=True):
        assert isinstance(out, np.ndarray)
        np.testing.assert_array_equal(out, (x * 2 + 1).astype(np.float32))


def test_an_error_reaches_every_caller_of_the_pass() -> None:
    forward = SlowForward(fail=True)
    results = _call_many(forward, [np.zeros((1, 2)) for _ in range(4)])
    assert all(isinstance(r, ValueError) for r in results)
