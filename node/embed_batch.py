"""One forward pass for the rows of concurrent scoring requests.

A scoring request embeds one customer: a forward pass of a few small layers, whose cost is
almost all fixed overhead (preprocessing calls, torch dispatch), so rows that arrive together
go through the network together. While one pass runs, newcomers queue; the next caller to get
a turn runs every queued row in one pass and hands each caller its own output rows. Rows are
independent (the model is in eval mode, no batch statistics), so a row's embedding does not
depend on the rows it travelled with.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAX_ROWS = 256

Forward = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float32]]


@dataclass
class _Rows:
    values: npt.NDArray[np.float64]
    taken: bool = False
    done: bool = False
    out: npt.NDArray[np.float32] | None = None
    error: BaseException | None = None


class BatchedForward:
    """``forward`` for many callers at once; :meth:`__call__` as ``forward`` itself."""

    def __init__(self, forward: Forward, max_rows: int = MAX_ROWS) -> None:
        self._forward = forward
        self._max_rows = max_rows
        self._turn = threading.Condition()
        self._queued: list[_Rows] = []
        self._running = False

    def __call__(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        mine = _Rows(values)
        with self._turn:
            self._queued.append(mine)
        while True:
            with self._turn:
                while not mine.done and (mine.taken or self._running):
                    self._turn.wait()
                if mine.done:
                    break
                self._running = True
                batch = self._take()
            try:
                self._run(batch)
            finally:
                with self._turn:
                    self._running = False
                    self._turn.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.out is not None
        return mine.out

    def _take(self) -> list[_Rows]:
        batch: list[_Rows] = []
        rows = 0
        while self._queued and (not batch or rows + len(self._queued[0].values) <= self._max_rows):
            item = self._queued.pop(0)
            item.taken = True
            rows += len(item.values)
            batch.append(item)
        return batch

    def _run(self, batch: list[_Rows]) -> None:
        try:
            if len(batch) == 1:
                batch[0].out = self._forward(batch[0].values)
            else:
                out = self._forward(np.concatenate([b.values for b in batch]))
                start = 0
                for item in batch:
                    item.out = out[start : start + len(item.values)]
                    start += len(item.values)
        except BaseException as exc:  # every caller of the pass gets the pass's error
            for item in batch:
                item.error = exc
        for item in batch:
            item.done = True
