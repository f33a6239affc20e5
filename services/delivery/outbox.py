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
from services.store import keys
from services.store.client import redis_errors
from services.store.pubsub import WakeChannels
from services.store.scripts import Scripts

logger = logging.getLogger(__name__)

# The visitor's email is kept here and not only as their URN's display, which Courier resets on every
# incoming message; it lives this long after the visitor last gave it (set_email)
EMAIL_TTL = 365 * 86400

# Queue a frame unless the same message is already queued (Courier may post a message twice) or
# the outbox already holds ARGV[6] messages (-1), then wake whichever process holds the chat's
# sockets, with the message itself ("key\nframe"), so that it can push it without reading the
# outbox back (ARGV[7]: PUBLISH, or SPUBLISH where the server has sharded pub/sub).
QUEUE = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[6]) then return -1 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[3]), ARGV[1])
redis.call('ZADD', KEYS[4], 'NX', ARGV[4], ARGV[5])
redis.call(ARGV[7], ARGV[3], ARGV[1] .. '\\n' .. ARGV[2])
return 1
"""

# The first N entries in order, as [key, frame, key, frame, ...].
WINDOW = """
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #ids == 0 then return {} end
local frames = redis.call('HMGET', KEYS[2], unpack(ids))
local out = {}
for i, id in ipairs(ids) do
  if frames[i] then out[#out + 1] = id; out[#out + 1] = frames[i] end
end
return out
"""

# Remove a chat's entry (its keys as Outbox.entry_keys names them, the message key, the chat key);
# false when there was none (already acked, or unknown). A part of the script that removes an entry
# in the same step as it tells Courier (CourierQueue's ACK), so that an ack is never half done.
REMOVE_ENTRY = """
local function remove_entry(order, frames, index, msg_key, chat)
  if redis.call('HDEL', frames, msg_key) == 0 then return false end
  redis.call('ZREM', order, msg_key)
  if redis.call('ZCARD', order) == 0 then redis.call('ZREM', index, chat) end
  return true
end
"""


class Outbox:
    def __init__(self, redis: aioredis.Redis, scripts: Scripts, wakes: WakeChannels):
        self.redis = redis
        self.wakes = wakes
        self._queue = scripts.register(QUEUE)
        self._window = scripts.register(WINDOW)

    @redis_errors("queueing a message")
    async def queue(self, key: str, msg_key: str, frame: bytes, most: int) -> bool:
        """Queue a frame for the chat; False if that message was already queued, TooLarge if the
        outbox already holds `most` messages."""
        added = await self._queue.replicated(
            keys=[keys.outbox_order(key), keys.outbox_frames(key), keys.seq(key), keys.outboxes_of(key)],
            args=[msg_key, frame, keys.wake_channel(key), time.time(), key, most, self.wakes.publish],
        )
        if added == -1:
            raise TooLarge(f"the chat's outbox is full: {most} messages wait for the visitor")
        return bool(added)

    @redis_errors("reading an outbox")
    async def window(self, key: str, size: int) -> list[tuple[str, str]]:
        """The chat's first `size` entries in order, as (message key, frame) pairs."""
        flat = await self._window(keys=[keys.outbox_order(key), keys.outbox_frames(key)], args=[size])
        return [(flat[i].decode(), flat[i + 1].decode()) for i in range(0, len(flat), 2)]

    @staticmethod
    def entry_keys(key: str) -> list[str]:
        """The keys REMOVE_ENTRY takes for a chat's outbox."""
        return [keys.outbox_order(key), keys.outbox_frames(key), keys.outboxes_of(key)]

    @redis_errors("indexing an outbox")
    async def reindex(self, key: str, oldest_queued: float = None):
        """Record when the chat's oldest waiting message was queued (None: the outbox is empty)."""
        if oldest_queued is None:
            if not await self.redis.zcard(keys.outbox_order(key)):
                await self.redis.zrem(keys.outboxes_of(key), key)
        else:
            await self.redis.zadd(keys.outboxes_of(key), {key: oldest_queued}, xx=True)

    @redis_errors("keeping an email")
    async def keep_visitor_email(self, key: str, email: str):
        await self.redis.set(keys.visitor_email(key), email, ex=EMAIL_TTL)

    async def visitor_email(self, key: str) -> str | None:
        """The email the visitor of this chat gave, if any. None while Redis is down: a resume must not
        fail over it, and its outbox waits for Redis anyway. A plain read, so that Redis holding up
        writes (CLIENT PAUSE WRITE, a failover) does not hold up resumes."""
        try:
            email = await self.redis.get(keys.visitor_email(key))
        except (RedisError, OSError) as e:
            logger.warning("redis unavailable while reading an email: %s", e)
            return None
        return email.decode() if email is not None else None
