"""Moving what an earlier chip queued under its key layout (one server, global indexes) to today's
(services/store/keys.py), so an upgrade loses nothing.

Releases before the sharded layout kept every outbox on "chip:outboxes", every chat with Courier
events on "chip:courier:due" and emails at "chip:email:<chat>". At start, and every minute while a
process of the earlier release may still be queueing (a rolling upgrade), each chat found there is
moved in one script: its waiting messages keep their order and go after any the new layout queued
for it meanwhile; its Courier events go before the new layout's, since they are older. A chat whose
events an old process is posting right now (it holds the old lock) is left for the next pass.

A pass reads two zsets and SCANs the whole keyspace, so it does not go on for ever: the first pass
that finds the old layout empty writes the time in Redis (keys.legacy_empty_since), and a pass that
finds something there deletes it. Once the old layout has stayed empty for SETTLE intervals (an
hour), every process stops looking, and a process started later does not look at all. Not at the
first empty pass: an old process on a host not upgraded yet can queue again after it, and what it
leaves when it stops would then never be moved.

Only a single server or a Sentinel primary can hold the old layout: the earlier release did not run
on a cluster, so on a cluster there is nothing to move, and nothing is looked for or written.
"""

import asyncio
import logging
import time

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from services.periodic import Periodic
from services.store import keys
from services.store.scripts import Scripts

logger = logging.getLogger(__name__)

OLD_OUTBOXES = f"{keys.PREFIX}:outboxes"
OLD_COURIER_DUE = f"{keys.PREFIX}:courier:due"
OLD_COURIER_ATTEMPTS = f"{keys.PREFIX}:courier:attempts"
OLD_EMAILS = f"{keys.PREFIX}:email:*"
# intervals the old layout must stay empty before no process looks for it again: longer than
# upgrading every host takes
SETTLE = 60


def move_keys(chat: str) -> dict:
    """The keys lua/legacy_move_chat.lua takes for a chat: the earlier layout's, then today's (n_)."""
    return dict(
        order=f"{keys.PREFIX}:out:{chat}:order",
        frames=f"{keys.PREFIX}:out:{chat}:frames",
        email=f"{keys.PREFIX}:email:{chat}",
        events=f"{keys.PREFIX}:courier:{chat}",
        lock=f"{keys.PREFIX}:courier:{chat}:lock",
        outboxes=OLD_OUTBOXES,
        due=OLD_COURIER_DUE,
        attempts=OLD_COURIER_ATTEMPTS,
        n_order=keys.outbox_order(chat),
        n_frames=keys.outbox_frames(chat),
        n_seq=keys.seq(chat),
        n_outboxes=keys.outboxes_of(chat),
        n_email=keys.visitor_email(chat),
        n_events=keys.courier_events(chat),
        n_due=keys.courier_due_of(chat),
        n_attempts=keys.courier_attempts(chat),
    )


class LegacyKeys:
    """The upgrade pass; with `enabled` False (--legacy-upgrade off) it never looks for the old layout."""

    def __init__(self, redis: aioredis.Redis, scripts: Scripts, interval: float = 60.0, enabled: bool = True):
        self.redis = redis
        self.interval = interval
        self.settle = SETTLE * interval
        self.enabled = enabled
        self._move = scripts.load("legacy_move_chat")
        self._loop = Periodic(self.move_pending, interval, name="the upgrade pass")

    async def move_all(self, now: float) -> int:
        """Move every chat the old layout holds, their scripts batched into one pipeline; how many
        chats it found there (moved, or left for the next pass)."""
        if isinstance(self.redis, RedisCluster):
            return 0
        chats = {m.decode() for m in await self.redis.zrange(OLD_OUTBOXES, 0, -1)}
        chats.update(m.decode() for m in await self.redis.zrange(OLD_COURIER_DUE, 0, -1))
        async for email in self.redis.scan_iter(match=OLD_EMAILS, count=1000):
            chats.add(email.decode()[len(OLD_EMAILS) - 1 :])
        moved = sum(await asyncio.gather(*[self._move(**move_keys(chat), chat=chat, now=now) for chat in chats]))
        if moved:
            logger.info("moved %d chat(s) from the earlier key layout", moved)
        return len(chats)

    @property
    def looking(self) -> bool:
        """Whether a pass is still to come (the loop runs)."""
        return self._loop.running

    async def start(self):
        """A pass now, before anything is served, then one every `interval` seconds until the old
        layout has stayed empty for `settle`; nothing when off, on a cluster, or once it has."""
        if self.enabled and not await self.move_pending():
            self._loop.start()

    async def move_pending(self) -> bool:
        """A pass, unless the old layout has stayed empty for `settle` already; whether it has (then
        no further pass starts). A failure is logged, and the next pass tries again."""
        if isinstance(self.redis, RedisCluster):
            return True
        now = time.time()
        try:
            since = await self.redis.get(keys.legacy_empty_since())
            since = None if since is None else float(since)
            if since is None or now - since < self.settle:
                if await self.move_all(now):
                    await self.redis.delete(keys.legacy_empty_since())
                    return False
                if since is None:
                    # another process may have written it first: it is read again at the next pass
                    await self.redis.set(keys.legacy_empty_since(), repr(now), nx=True)
                    since = now
        except (RedisError, OSError) as e:
            logger.warning("earlier key layout not read: %s", e)
            return False
        if now - since < self.settle:
            return False
        # said by each process that was looking; at a later start, only in debug
        level = logging.INFO if self._loop.running else logging.DEBUG
        logger.log(level, "the earlier key layout has stayed empty for %.0f s: not looked for again", now - since)
        self._loop.halt()
        return True

    async def stop(self, timeout: float = 2.0):
        await self._loop.stop(timeout)
