"""Pings every open socket every `interval` seconds from one timer, and closes one that has sent
nothing (no pong, no frame) for `timeout` seconds after a ping: a visitor whose network went away
without a FIN would otherwise hold its socket, and its chat, for hours.

Tornado's own pinger is a task per socket, each with a coroutine, a future and a timer waiting:
about 1.5 KB of every idle socket (BENCHMARKS.md). Here the sockets wait in two queues instead, in
the order they are due: with one interval and one timeout for all, a socket joins the back of a
queue and the front is always the next due, so a look costs only the sockets it acts on.

Invariants:
- an open socket is in exactly one queue: waiting for its next ping, or for the answer to its last;
- a socket is closed only when nothing came from it since a ping sent more than `timeout` ago;
- a closed socket leaves the queues at its next turn, and is never pinged.
"""

import collections
import logging
import time

from services.delivery.sessions import Session
from services.periodic import Periodic

logger = logging.getLogger(__name__)


class Keepalive:
    def __init__(self, interval: float, timeout: float, tick: float = 1.0):
        self.interval = interval
        self.timeout = timeout
        self._to_ping: collections.deque[tuple[float, Session]] = collections.deque()
        self._to_hear: collections.deque[tuple[float, Session]] = collections.deque()
        self._loop = Periodic(self.look, min(tick, interval / 2, timeout / 2), name="the ping loop")

    def watch(self, session: Session):
        """A socket just opened: ping it in `interval` seconds, and every `interval` after."""
        self._to_ping.append((time.monotonic() + self.interval, session))

    def look(self):
        """Ping the sockets due a ping; close those that did not answer theirs in time."""
        now = time.monotonic()
        while self._to_hear and self._to_hear[0][0] <= now:
            _, session = self._to_hear.popleft()
            if session.transport.closed():
                continue
            if session.heard < session.pinged:
                logger.info("closing a socket that did not answer a ping chat=%s", session.chat_id)
                session.transport.close(1001, "ping timed out")
                continue
            self._to_ping.append((session.pinged + self.interval, session))
        while self._to_ping and self._to_ping[0][0] <= now:
            _, session = self._to_ping.popleft()
            if session.transport.closed():
                continue
            session.pinged = now
            session.transport.ping()
            self._to_hear.append((now + self.timeout, session))

    def start(self):
        self._loop.start()

    async def stop(self, timeout: float = 2.0):
        await self._loop.stop(timeout)

    @property
    def watched(self) -> int:
        return len(self._to_ping) + len(self._to_hear)
