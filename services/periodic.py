"""Work that the services repeat every so often (the due loops, the sweeps, the upgrade pass), paced
by Tornado's PeriodicCallback in this one place.

Invariants:
- two runs of one Periodic never overlap: the next call is scheduled once the last has ended;
- after stop() or halt(), no new run starts; stop() waits for the one under way at most its bound.
"""

import asyncio
import inspect
import logging

from tornado.ioloop import PeriodicCallback

from services.shutdown import settle

logger = logging.getLogger(__name__)


class Periodic:
    """Calls `work` (a function or a coroutine function) every `seconds`, jittered by `jitter` (a
    fraction of the period) so that many processes do not run in step."""

    def __init__(self, work, seconds: float, jitter: float = 0.0, name: str = "periodic work"):
        self.work = work
        self.seconds = seconds
        self.jitter = jitter
        self.name = name
        self._callback = None
        self._run_task: asyncio.Task | None = None

    def start(self):
        self._callback = PeriodicCallback(self._run, self.seconds * 1000, jitter=self.jitter)
        self._callback.start()

    @property
    def running(self) -> bool:
        return self._callback is not None and self._callback.is_running()

    async def _run(self):
        result = self.work()
        if inspect.isawaitable(result):
            # a task of its own, so that stop() can wait for it; PeriodicCallback awaits it before
            # scheduling the next call
            self._run_task = asyncio.ensure_future(result)
            await self._run_task

    def halt(self):
        """Start no further run, and leave the one under way alone: work that finds its job done
        calls this from inside its run, where stop() would wait for itself."""
        if self._callback is not None:
            self._callback.stop()

    async def stop(self, timeout: float = 2.0):
        self.halt()
        if self._run_task is not None:
            await settle([self._run_task], timeout, self.name, "it goes on until the process exits")
