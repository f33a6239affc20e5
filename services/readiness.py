"""Whether this process may serve: starting (waiting for its stores), ready, or stopping; and the
HTTP requests in flight that a graceful stop lets finish.

Readiness is a start-up and shut-down gate, not a live probe of the stores: every process shares
one PostgreSQL and one Redis, so a probe that failed with them would take every process out of the
load balancer at once and turn chip's 503 (which Courier retries, and which widgets show as
`unavailable`) into the balancer's own 502. Once ready, a store outage is answered request by
request, and chip reconnects by itself.
"""

import asyncio
import contextlib
import logging
import time

from services.backoff import Backoff
from services.errors import Unavailable

logger = logging.getLogger(__name__)


class Stopping(Exception):
    """A stop was asked for while start-up was still waiting for a store."""


class Readiness:
    def __init__(self, retry: Backoff):
        self.retry = retry
        self.state = "starting"
        self.waiting_for = ""
        self._stop = asyncio.Event()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def reason(self) -> str:
        """Why this process may not serve now ('' when it may)."""
        if self.state == "starting":
            return f"starting: waiting for {self.waiting_for or 'start-up'}"
        if self.state == "stopping":
            return "shutting down"
        return ""

    def require(self):
        """Raise Unavailable (503) unless this process is ready to serve."""
        if not self.ready:
            raise Unavailable(self.reason)

    def set_ready(self):
        self.state = "ready"
        self.waiting_for = ""

    def stop(self):
        """Refuse from now on, and end any wait for a store."""
        self.state = "stopping"
        self._stop.set()

    async def stopped(self):
        """Return once a stop has been asked for."""
        await self._stop.wait()

    async def until_answers(self, name: str, check, where: str):
        """Await check() until it succeeds, retrying with the policy's backoff and a log line per
        failure; Stopping if a stop is asked for meanwhile."""
        self.waiting_for = name
        attempt, since = 0, time.monotonic()
        while True:
            if self._stop.is_set():
                raise Stopping()
            try:
                await check()
            except Exception as e:  # noqa: BLE001 - whatever the client raises, the store did not answer
                attempt += 1
                delay = self.retry.delay(attempt)
                cause = e.__cause__ or e  # the driver's own words, not chip's "database unavailable"
                reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
                logger.warning(
                    "%s at %s does not answer (%s); not ready, trying again in %.1f s", name, where, reason, delay
                )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                continue
            if attempt:
                logger.info("%s at %s answers after %.1f s", name, where, time.monotonic() - since)
            return

    def begin(self):
        """An HTTP request has arrived; end() once it is answered."""
        self._in_flight += 1
        self._idle.clear()

    def end(self):
        self._in_flight -= 1
        if not self._in_flight:
            self._idle.set()

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for the requests in flight to finish; how many did not."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self._in_flight
