"""Per-chat outboxes of outgoing messages in Redis, shared by every chip process, and the visitor's
email beside them.

Each entry is stored as the exact `chat_out` frame the widget gets, so pushing it costs no
encoding. Entries are ordered by their shard's sequence and leave only when acknowledged (or given up).
"""

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.errors import TooLarge
from services.lookups import Lookups
from services.store import keys
from services.store.batching import TurnBatch
from services.store.client import redis_errors
from services.store.pubsub import WakeChannels
from services.store.scripts import Scripts

logger = logging.getLogger(__name__)

# The visitor's email is kept here and not only as their URN's display, which Courier resets on every
# incoming message; it lives this long after the visitor last gave it (set_email)
EMAIL_TTL = 365 * 86400


class Outbox:
    def __init__(self, redis: aioredis.Redis, scripts: Scripts, wakes: WakeChannels):
        self.redis = redis
        self.wakes = wakes
        self._emails = TurnBatch(self._read_emails)
        self._queue = scripts.load("outbox_queue")
        self._window = scripts.load("outbox_window")

    @redis_errors("queueing a message")
    async def queue(self, key: str, msg_key: str, frame: bytes, most: int) -> bool:
        """Queue a frame for the chat; False if that message was already queued, TooLarge if the
        outbox already holds `most` messages."""
        added = await self._queue.replicated(
            order=keys.outbox_order(key),
            frames=keys.outbox_frames(key),
            seq=keys.seq(key),
            outboxes=keys.outboxes_of(key),
            msg_key=msg_key,
            frame=frame,
            wake=keys.wake_channel(key),
            now=time.time(),
            chat=key,
            most=most,
            publish=self.wakes.publish,
        )
        if added == -1:
            raise TooLarge(f"the chat's outbox is full: {most} messages wait for the visitor")
        return bool(added)

    @redis_errors("reading an outbox")
    async def window(self, key: str, size: int) -> list[tuple[str, str]]:
        """The chat's first `size` entries in order, as (message key, frame) pairs."""
        flat = await self._window(order=keys.outbox_order(key), frames=keys.outbox_frames(key), size=size)
        return [(flat[i].decode(), flat[i + 1].decode()) for i in range(0, len(flat), 2)]

    @redis_errors("indexing an outbox")
    async def reindex(self, key: str, oldest_queued: float = None):
        """Record when the chat's oldest waiting message was queued (None: the outbox is empty)."""
        if oldest_queued is None:
            if not await self.redis.zcard(keys.outbox_order(key)):
                await self.redis.zrem(keys.outboxes_of(key), key)
        else:
            await self.redis.zadd(keys.outboxes_of(key), {key: oldest_queued}, xx=True)

    async def _read_emails(self, names: list) -> list:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(name)
            return await pipe.execute(raise_on_error=False)

    @redis_errors("keeping an email")
    async def keep_visitor_email(self, key: str, email: str):
        await self.redis.set(keys.visitor_email(key), email, ex=EMAIL_TTL)

    async def visitor_email(self, key: str) -> str | None:
        """The email the visitor of this chat gave, if any. None while Redis is down: a resume must not
        fail over it, and its outbox waits for Redis anyway. A plain read, so that Redis holding up
        writes (CLIENT PAUSE WRITE, a failover) does not hold up resumes; the reads of one turn of the
        loop go as one pipeline (a reconnect storm resumes thousands of chats)."""
        try:
            email = await self._emails.add(keys.visitor_email(key))
        except (RedisError, OSError) as e:
            logger.warning("redis unavailable while reading an email: %s", e)
            return None
        return email.decode() if email is not None else None


async def visitor_email(outbox: Outbox, lookups: Lookups, channel, chat_id: str, urn=None) -> str | None:
    """The visitor's email: kept in Redis by set_email; else their URN's display, where the Go server
    kept it (Courier clears it when the visitor writes again). `urn`: the chat's URN if the caller
    has just read it, so that it is not read again."""
    email = await outbox.visitor_email(keys.chat_key(channel.uuid, chat_id))
    if email:
        return email
    if urn is None:
        urn = await lookups.urn(channel.org_id, chat_id)
    return urn.display if urn else None
