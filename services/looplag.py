"""How late the event loop runs what is due: a timer every PERIOD seconds records how long after its
time it fired (chip_loop_lag_seconds). Everything chip does shares one loop, so a stall there (a
long pipeline's parsing, a sweep, a collection of the garbage collector) delays every socket; the
histogram's highest bucket that moved says how long the worst one was.

Invariants:
- at most one timer is pending, from start() until stop();
- each firing observes one lag, never negative.
"""

import asyncio
import logging

from prometheus_client import Histogram

logger = logging.getLogger(__name__)

PERIOD = 0.025


class LoopLag:
    def __init__(self, histogram: Histogram, period: float = PERIOD):
        self.histogram = histogram
        self.period = period
        self._handle: asyncio.TimerHandle | None = None
        self._loop = None

    def start(self):
        self._loop = asyncio.get_running_loop()
        self._schedule()

    def _schedule(self):
        due = self._loop.time() + self.period
        self._handle = self._loop.call_at(due, self._fired, due)

    def _fired(self, due: float):
        self.histogram.observe(max(0.0, self._loop.time() - due))
        self._schedule()

    def stop(self):
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
