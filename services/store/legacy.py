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
from tornado.ioloop import PeriodicCallback

from services.store import keys
from services.store.scripts import Scripts

logger = logging.getLogger(__name__)

OLD_OUTBOXES = f"{keys.PREFIX}:outboxes"
OLD_COURIER_DUE = f"{keys.PREFIX}:courier:due"
OLD_COURIER_ATTEMPTS = f"{keys.PREFIX}:courier:attempts"
OLD_EMAILS = f"{keys.PREFIX}:email:*"


def old_keys(chat: str) -> list[str]:
    return [f"{keys.PREFIX}:out:{chat}:order", f"{keys.PREFIX}:out:{chat}:frames", f"{keys.PREFIX}:email:{chat}",
            f"{keys.PREFIX}:courier:{chat}", f"{keys.PREFIX}:courier:{chat}:lock",
            OLD_OUTBOXES, OLD_COURIER_DUE, OLD_COURIER_ATTEMPTS]


def new_keys(chat: str) -> list[str]:
    return [keys.outbox_order(chat), keys.outbox_frames(chat), keys.seq(chat), keys.outboxes_of(chat),
            keys.visitor_email(chat), keys.courier_events(chat), keys.courier_due_of(chat),
            keys.courier_attempts(chat)]


# KEYS: old_keys() then new_keys(); ARGV: the chat key, now. Returns 1 when all of the chat moved,
# 0 when its Courier events wait for an old process's post to end.
MOVE_CHAT = """
local chat, now = ARGV[1], ARGV[2]
local order, frames, email, events, lock = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local outboxes, due, attempts = KEYS[6], KEYS[7], KEYS[8]
local n_order, n_frames, n_seq, n_outboxes = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local n_email, n_events, n_due, n_attempts = KEYS[13], KEYS[14], KEYS[15], KEYS[16]
local ids = redis.call('ZRANGE', order, 0, -1)
if #ids > 0 then
  local oldest = redis.call('ZSCORE', outboxes, chat) or now
  for _, id in ipairs(ids) do
    local frame = redis.call('HGET', frames, id)
    if frame and redis.call('HEXISTS', n_frames, id) == 0 then
      redis.call('HSET', n_frames, id, frame)
      redis.call('ZADD', n_order, redis.call('INCR', n_seq), id)
    end
  end
  redis.call('ZADD', n_outboxes, 'NX', oldest, chat)
end
redis.call('DEL', order, frames)
redis.call('ZREM', outboxes, chat)
if redis.call('EXISTS', email) == 1 then
  local ttl = redis.call('PTTL', email)
  if redis.call('EXISTS', n_email) == 0 then
    if ttl > 0 then
      redis.call('SET', n_email, redis.call('GET', email), 'PX', ttl)
    else
      redis.call('SET', n_email, redis.call('GET', email))
    end
  end
  redis.call('DEL', email)
end
if redis.call('LLEN', events) == 0 then
  redis.call('ZREM', due, chat)
  redis.call('HDEL', attempts, chat)
  return 1
end
if redis.call('EXISTS', lock) == 1 then return 0 end
local queued = redis.call('LRANGE', events, 0, -1)
for i = #queued, 1, -1 do redis.call('LPUSH', n_events, queued[i]) end
redis.call('ZADD', n_due, 'NX', now, chat)
local failed = redis.call('HGET', attempts, chat)
if failed then redis.call('SET', n_attempts, failed) end
redis.call('DEL', events)
redis.call('ZREM', due, chat)
redis.call('HDEL', attempts, chat)
return 1
"""


class LegacyKeys:
    def __init__(self, redis: aioredis.Redis, scripts: Scripts, interval: float = 60.0):
        self.redis = redis
        self.interval = interval
        self._move = scripts.register(MOVE_CHAT)
        self._loop = None

    async def move_all(self, now: float) -> int:
        """Move every chat the old layout holds, their scripts batched into one pipeline; how many moved."""
        if isinstance(self.redis, RedisCluster):
            return 0
        chats = {m.decode() for m in await self.redis.zrange(OLD_OUTBOXES, 0, -1)}
        chats.update(m.decode() for m in await self.redis.zrange(OLD_COURIER_DUE, 0, -1))
        async for email in self.redis.scan_iter(match=OLD_EMAILS, count=1000):
            chats.add(email.decode()[len(OLD_EMAILS) - 1:])
        moved = sum(await asyncio.gather(*[self._move(keys=old_keys(chat) + new_keys(chat), args=[chat, now])
                                           for chat in chats]))
        if moved:
            logger.info("moved %d chat(s) from the earlier key layout", moved)
        return moved

    def start(self):
        """Look again every `interval` seconds: an old process may still be queueing."""
        self._loop = PeriodicCallback(self.move_pending, self.interval * 1000)
        self._loop.start()

    async def move_pending(self):
        """move_all() now; a failure is logged, and the next look tries again."""
        try:
            await self.move_all(time.time())
        except (RedisError, OSError) as e:
            logger.warning("earlier key layout not read: %s", e)

    def stop(self):
        if self._loop is not None:
            self._loop.stop()
