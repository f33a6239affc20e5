"""Moving what an earlier chip queued under its key layout (one server, global indexes) to today's
(services/store/keys.py), so an upgrade loses nothing.

Releases before the sharded layout kept every outbox on "chip:outboxes", every chat with Courier
events on "chip:courier:due" and emails at "chip:email:<chat>". At start, and every minute while a
process of the earlier release may still be queueing (a rolling upgrade), each chat found there is
moved in one script: its waiting messages keep their order and go after any the new layout queued
for it meanwhile; its Courier events go before the new layout's, since they are older. A chat whose
events an old process is posting right now (it holds the old lock) is left for the next pass.

Only a single server or a Sentinel primary can hold the old layout: the earlier release did not run
on a cluster, so on a cluster there is nothing to move.
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
    def __init__(self, redis: aioredis.Redis, scripts: Scripts, interval: float = 60.0):
        self.redis = redis
        self.interval = interval
        self._move = scripts.load("legacy_move_chat")
        self._loop = Periodic(self.move_pending, interval, name="the upgrade pass")

    async def move_all(self, now: float) -> int:
        """Move every chat the old layout holds, their scripts batched into one pipeline; how many moved."""
        if isinstance(self.redis, RedisCluster):
            return 0
        chats = {m.decode() for m in await self.redis.zrange(OLD_OUTBOXES, 0, -1)}
        chats.update(m.decode() for m in await self.redis.zrange(OLD_COURIER_DUE, 0, -1))
        async for email in self.redis.scan_iter(match=OLD_EMAILS, count=1000):
            chats.add(email.decode()[len(OLD_EMAILS) - 1 :])
        moved = sum(await asyncio.gather(*[self._move(**move_keys(chat), chat=chat, now=now) for chat in chats]))
        if moved:
            logger.info("moved %d chat(s) from the earlier key layout", moved)
        return moved

    def start(self):
        """Look again every `interval` seconds: an old process may still be queueing."""
        self._loop.start()

    async def move_pending(self):
        """move_all() now; a failure is logged, and the next look tries again."""
        try:
            await self.move_all(time.time())
        except (RedisError, OSError) as e:
            logger.warning("earlier key layout not read: %s", e)

    async def stop(self, timeout: float = 2.0):
        await self._loop.stop(timeout)
