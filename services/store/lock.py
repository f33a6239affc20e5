"""Short Redis locks: which chip process does a chat's work right now (posting its Courier events,
giving up its stale messages). Every lock is taken here, or by a script that includes lua/lib/lock.lua.

A lock is a key set with NX and PX to a token only its holder knows, so that it expires if the
holder crashes, and only the holder lets it go or renews it: a holder slower than its lock (a slow
Courier, a slow SMTP server) must never free or extend a lock another process has taken since.
redis-py's own Lock does this too, but a round trip per call and outside the scripts: the Courier
queue takes its lock in the same step as it reads the events (services/courier/queue.py).
"""

import itertools
import secrets
from typing import NamedTuple

from services.store.scripts import Scripts


class Lock(NamedTuple):
    """A claim on a lock: its key, this holder's token, how long a take or a renewal holds it (ms)."""

    key: str
    token: str
    ms: int


class Locks:
    def __init__(self, scripts: Scripts):
        self._take = scripts.load("lock_take")
        self._release = scripts.load("lock_release")
        # a token only has to differ from every other holder's: this process's random prefix and a
        # counter, instead of a call to the system's random source per lock
        self._tokens = map(f"{secrets.token_hex(8)}:{{}}".format, itertools.count())

    def claim(self, key: str, ms: int) -> Lock:
        """A fresh claim on the lock `key`, to take here or in a script that includes lib/lock.lua."""
        return Lock(key, next(self._tokens), ms)

    async def take(self, lock: Lock) -> bool:
        """Take the lock; False if another holder has it."""
        return bool(await self._take(lock=lock.key, token=lock.token, ms=lock.ms))

    async def release(self, lock: Lock):
        """Let the lock go, if it is still this claim's."""
        await self._release(lock=lock.key, token=lock.token)
