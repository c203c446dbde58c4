"""Time as a parameter: library code takes a clock so tests can control it."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Returns seconds since the Unix epoch."""

system_clock: Clock = time.time
