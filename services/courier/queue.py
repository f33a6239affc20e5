"""Events bound for Courier (chat_started, msg_in, msg_status), kept in Redis until Courier takes them.

Each chat has a list of events; whoever holds the chat's lock posts them in order, several per
request. A 5xx, no answer, or a 400 that is Courier's own failure (services/courier/client.py tells them
apart) leaves them queued and puts the chat on the due set with a capped, jittered backoff; the
due loop of any chip process (this one after a restart, or another) picks them up, until
--inbound-expiry gives them up. A 4xx that retrying cannot help drops them with an error line.

A request stays within Courier's body limit, and ends with the first event that Courier must not
get twice (anything but a msg_status): Courier writes the events before the one it fails on, then
answers 400, and the whole request is posted again.

A msg_status is chip's report, a msg_in the visitor's words: a status Courier refuses for good, or
keeps refusing for longer than `status_expiry`, is given up and the visitor's events behind it are
posted at once, in their order.
"""

import asyncio
import logging
import time

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from tornado.ioloop import PeriodicCallback

from services import events
from services.backoff import RetryPolicy
from services.courier.client import MAX_BODY, CourierClient, Outcome
from services.delivery.outbox import REMOVE_ENTRY, Outbox
from services.lookups import Lookups
from services.metrics import Metrics
from services.shutdown import settle
from services.store import indexes, keys
from services.store.client import redis_errors
from services.store.indexes import sweep
from services.store.lock import LOCK, Lock, Locks
from services.store.scripts import Scripts

logger = logging.getLogger(__name__)

# chats per shard whose first event /metrics reads for the backlog's age: 1024 in all
BACKLOG_SAMPLE = 8

# the only event that Courier may be given twice without harm: it sets a status again
REPEATABLE = frozenset({"msg_status"})

# Append an event and make sure the chat is on the due set (without moving a backoff forward).
# Returns the chat's failed attempts in a row (nil when it is not backing off).
PUSH = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[3])
return redis.call('GET', KEYS[3])
"""

# Take a chat's lock (key, token, ms) and read its first N events in one round trip; nil if another
# flusher holds it. A part of TAKE and of ACK.
TAKE_LOCK = LOCK + """
local function take(lock, events, token, ms, n)
  if not take_lock(lock, token, ms) then return nil end
  return redis.call('LRANGE', events, 0, tonumber(n) - 1)
end
"""

TAKE = TAKE_LOCK + "return take(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])\n"

# A message leaves its outbox (KEYS[1..3]) and its status is queued for Courier in the same step;
# nil when the outbox had no such entry. Given a lock (KEYS[6], token, ms, N), also takes the chat's
# lock and returns its first N events, saving the poster a round trip; 1 when the lock is not taken.
ACK = REMOVE_ENTRY + TAKE_LOCK + """
if not remove_entry(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2]) then return false end
redis.call('RPUSH', KEYS[4], ARGV[3])
redis.call('ZADD', KEYS[5], 'NX', ARGV[4], ARGV[2])
return KEYS[6] and take(KEYS[6], KEYS[4], ARGV[5], ARGV[6], ARGV[7]) or 1
"""

# Drop the first N events once they are handled, if this flusher still holds the lock; let the
# lock go when none are left (saving a round trip), else renew it for the next post, so a long
# drain never lets another process post the same events. Returns how many events are left
# (-1: the lock was lost, nothing was dropped).
COMMIT = LOCK + """
if not holds_lock(KEYS[4], ARGV[3]) then return -1 end
redis.call('LTRIM', KEYS[1], tonumber(ARGV[1]), -1)
redis.call('DEL', KEYS[3])
local left = redis.call('LLEN', KEYS[1])
if left == 0 then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[4])
else
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
return left
"""


def encode_event(event: dict) -> bytes:
    """An event as stored in a chat's list: with the time it was queued, for --inbound-expiry."""
    return orjson.dumps({"t": time.time(), "e": event})


class CourierQueue:
    def __init__(self, redis: aioredis.Redis, scripts: Scripts, locks: Locks, client: CourierClient,
                 lookups: Lookups, metrics: Metrics, *, expiry: float = 86400.0, status_expiry: float = 30.0,
                 batch: int = 50, retry: RetryPolicy = RetryPolicy(), answer_wait: float = 10.0):
        self.redis = redis
        self.client = client
        self.lookups = lookups
        self.metrics = metrics
        self.expiry = expiry
        self.status_expiry = status_expiry
        self.batch = batch
        self.retry = retry
        self.answer_wait = answer_wait
        # a crashed flusher's lock expires, and its chats fall due, a little after its post would
        # have timed out (--courier-timeout, itself longer than Courier's own limit)
        self.grace = client.timeout + 5.0
        self._push = scripts.register(PUSH)
        self._take = scripts.register(TAKE)
        self._commit = scripts.register(COMMIT)
        self._ack = scripts.register(ACK)
        self.locks = locks
        self._flushing: dict[str, asyncio.Task] = {}
        self._dirty: set[str] = set()
        self._loop = None
        self._tick_task = None

    @property
    def due_score(self) -> float:
        """Where a chat with fresh events goes on the due set: after a crashed flusher's lock expires."""
        return time.time() + self.grace

    @redis_errors("queueing a courier event")
    async def push(self, key: str, event: dict) -> bool:
        """Queue an event durably; True if the chat is backing off (Courier failed it lately)."""
        attempts = await self._push.replicated(
            keys=[keys.courier_events(key), keys.courier_due_of(key), keys.courier_attempts(key)],
            args=[encode_event(event), self.due_score, key],
        )
        return attempts is not None

    @redis_errors("acknowledging a message")
    async def report(self, key: str, msg_key: str, status: str, post: bool = True) -> bool:
        """The message leaves the chat's outbox and Courier is told its `status`, in one step, so that
        an ack is never half done; False if the outbox had no such message (acked already, or
        unknown). With `post`, the chat's events are posted next, the lock taken in that same step
        when this process is not posting them already."""
        lock = self.lock(key) if post else None
        done = await self._ack(
            keys=Outbox.entry_keys(key) + [keys.courier_events(key), keys.courier_due_of(key)] + ([lock.key] if lock else []),
            args=[msg_key, key, encode_event(events.courier_msg_status(msg_key, status)), self.due_score]
            + ([lock.token, lock.ms, self.batch] if lock else []),
        )
        if done is None:
            return False
        if post:
            self.kick(key, lock, done if isinstance(done, list) else None)
        return True

    async def send(self, key: str, event: dict):
        """Queue an event and post it soon, without waiting for Courier."""
        if not await self.push(key, event):
            self.kick(key)

    async def deliver(self, key: str, event: dict) -> Outcome:
        """Queue an event and wait for Courier's answer (it stays queued if Courier fails), for
        `answer_wait` seconds at most: a slow Courier is given --courier-timeout to answer, a widget
        waiting for chat_started is not; the post goes on, and this says FAILED (queued, not yet taken)."""
        if await self.push(key, event):
            return Outcome.FAILED
        try:
            return await asyncio.wait_for(asyncio.shield(self.kick(key)), self.answer_wait)
        except TimeoutError:
            return Outcome.FAILED

    def _posting(self, key: str) -> bool:
        # a finished task stays in _flushing until its done-callback runs on a later turn
        task = self._flushing.get(key)
        return task is not None and not task.done()

    def lock(self, key: str) -> Lock | None:
        """A fresh claim on the chat's lock for a script to take; None while this process is posting
        the chat's events already (kick() then has that go round once more)."""
        return None if self._posting(key) else self._claim(key)

    def _claim(self, key: str) -> Lock:
        return self.locks.claim(keys.courier_lock(key), int(self.grace * 1000))

    def kick(self, key: str, lock: Lock = None, taken: list = None) -> asyncio.Task:
        """Start posting the chat's events, or have the running flush go round once more. `taken`:
        the events a script read when it took `lock`; they are posted first, and the lock let go."""
        if not taken and self._posting(key):
            self._dirty.add(key)
            return self._flushing[key]
        task = asyncio.get_running_loop().create_task(self._flush(key, (lock, taken) if taken else None))
        self._flushing[key] = task
        task.add_done_callback(lambda done: self._flushing.pop(key) if self._flushing.get(key) is done else None)
        return task

    async def _flush(self, key: str, claimed: tuple[Lock, list] = None) -> Outcome:
        first = None
        try:
            while True:
                self._dirty.discard(key)
                outcome = await self._flush_locked(key, claimed)
                claimed = None
                first = first or outcome
                if outcome.retried or key not in self._dirty:
                    return first
        except (RedisError, OSError) as e:
            logger.warning("redis unavailable while posting to courier: %s", e)
            return Outcome.FAILED

    async def _flush_locked(self, key: str, claimed: tuple[Lock, list] = None) -> Outcome:
        """Post the chat's events under its lock: the one `claimed` already (with the events read
        when it was taken), else one taken here."""
        if claimed is not None:
            lock, raw = claimed
        else:
            lock = self._claim(key)
            raw = await self._take(keys=[lock.key, keys.courier_events(key)], args=[lock.token, lock.ms, self.batch])
        if raw is None:
            # another process is posting this chat's events; look again shortly in case it just ended
            asyncio.get_running_loop().call_later(self.retry.tick / 2, self._kick_if_due, key)
            return Outcome.OK
        holding = True
        try:
            outcome, holding = await self._drain(key, lock, raw)
            return outcome
        finally:
            if holding:
                await self.locks.release(lock)

    async def _drain(self, key: str, lock: Lock, raw: list) -> tuple[Outcome, bool]:
        """Post the chat's events, starting with `raw` (read with the lock); the outcome, and whether
        this flusher still holds the lock (COMMIT lets it go once the list is empty)."""
        channel_uuid, chat_id = keys.split_chat_key(key)
        channel = await self.lookups.channel(channel_uuid)
        room = MAX_BODY - len(self.client.body(chat_id, channel.secret, [])) if channel else 0
        first = None
        while True:
            if raw is None:
                raw = await self.redis.lrange(keys.courier_events(key), 0, self.batch - 1)
            if not raw:
                handled, outcome = 0, Outcome.OK
            elif channel is None:
                self._give_up(key, [orjson.loads(item)["e"] for item in raw], "channel_gone",
                              "the channel is gone from the database")
                handled, outcome = len(raw), Outcome.REJECTED
            else:
                handled, events, waited = self._next_request(key, raw, room)
                outcome = await self._post(key, channel.secret, events, waited) if events else Outcome.OK
            if outcome.retried:
                await self._defer(key)
                return outcome, True
            first = first or outcome
            left = await self._commit_handled(key, lock, handled)
            if left <= 0:
                return (first if left == 0 else Outcome.FAILED), False
            raw = None

    async def _post(self, key: str, secret: str, events: list, waited: float) -> Outcome:
        """Post one request. Its statuses give way to the visitor's event behind them when Courier
        refuses one for good, or has refused the request for longer than `status_expiry` (`waited`:
        how long its oldest status has waited): they are given up and that event is posted alone."""
        channel_uuid, chat_id = keys.split_chat_key(key)
        outcome = await self.client.post_events(channel_uuid, secret, chat_id, events)
        if outcome is Outcome.STATUS_REJECTED or (outcome is Outcome.REFUSED and waited > self.status_expiry):
            statuses = [e for e in events if e["type"] in REPEATABLE]
            if statuses:
                reason = "status_rejected" if outcome is Outcome.STATUS_REJECTED else "status_expired"
                self._give_up(key, statuses, reason, "so that the visitor's events behind them go on")
                events = events[len(statuses):]  # only a request's last event is not REPEATABLE
                outcome = await self.client.post_events(channel_uuid, secret, chat_id, events) if events else Outcome.OK
        if outcome in (Outcome.REJECTED, Outcome.STATUS_REJECTED):
            # a refusal Courier makes for good is of the whole request (its secret, its chat id)
            self._give_up(key, events, "rejected", "courier refused them for good")
        return outcome

    def _give_up(self, key: str, events: list, reason: str, why: str):
        """Events that will never be posted: an error line, and chip_courier_events_given_up{reason}."""
        kinds = ",".join(sorted({e.get("type", "?") for e in events}))
        logger.error("giving up %d courier event(s) (%s) of chat %s, %s: %s", len(events), kinds, key, reason, why)
        self.metrics.courier_given_up.labels(reason).inc(len(events))

    async def _commit_handled(self, key: str, lock: Lock, handled: int) -> int:
        return await self._commit(
            keys=[keys.courier_events(key), keys.courier_due_of(key), keys.courier_attempts(key), lock.key],
            args=[handled, key, lock.token, lock.ms],
        )

    def _next_request(self, key: str, raw: list, room: int) -> tuple[int, list, float]:
        """How many of the events read (`raw`, oldest first) the next request covers, those of them
        to post (as many as fit in `room` bytes, up to the first one that is not REPEATABLE), and how
        long the oldest REPEATABLE among them has waited. Events older than the expiry, and one too
        large for any request, are given up, loudly."""
        now, events, used, waited = time.time(), [], 0, 0.0
        for count, item in enumerate(raw, 1):
            stored = orjson.loads(item)
            event = stored["e"]
            size = len(orjson.dumps(event))
            if now - stored["t"] > self.expiry:
                self._give_up(key, [event], "expired", f"courier never took it in {now - stored['t']:.0f} s")
                continue
            if size > room:
                self._give_up(key, [event], "too_large", f"{size} bytes, more than courier reads of a request")
                continue
            used += size + (1 if events else 0)  # and the comma between two events
            if used > room:
                return count - 1, events, waited
            events.append(event)
            if event.get("type") not in REPEATABLE:
                return count, events, waited
            waited = max(waited, now - stored["t"])
        return len(raw), events, waited

    async def _defer(self, key: str):
        attempts = await self.redis.incr(keys.courier_attempts(key))
        delay = self.retry.courier.delay(attempts)
        await self.redis.zadd(keys.courier_due_of(key), {key: time.time() + delay})
        logger.info("courier events of chat %s kept for retry in %.1f s (attempt %d)", key, delay, attempts)

    def _kick_if_due(self, key: str):
        if key not in self._flushing:
            self.kick(key)

    async def backlog(self) -> tuple[int, float]:
        """(chats with events waiting for Courier, seconds the oldest of their first events has
        waited) for /metrics. The age reads the chats due soonest in each shard (BACKLOG_SAMPLE), so
        that a scrape costs the same however long Courier has been down; RedisError if Redis fails."""
        waiting = await indexes.count(self.redis, keys.courier_due)
        sample = await indexes.soonest(self.redis, keys.courier_due, BACKLOG_SAMPLE)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in sample:
                pipe.lindex(keys.courier_events(key), 0)
            firsts = [orjson.loads(raw)["t"] for raw in await pipe.execute() if raw]
        return waiting, max(0.0, time.time() - min(firsts)) if firsts else 0.0

    # the due loop

    def start(self):
        self._loop = PeriodicCallback(self._tick, self.retry.tick * 1000, jitter=0.1)
        self._loop.start()

    def _tick(self):
        if self._tick_task is None or self._tick_task.done():
            self._tick_task = asyncio.get_running_loop().create_task(self._run_due())

    async def _run_due(self):
        try:
            due = await sweep(self.redis, keys.courier_due, time.time(), 200)
        except (RedisError, OSError) as e:
            logger.debug("due courier events not read: %s", e)
            return
        for key in due:
            self._kick_if_due(key)

    async def stop(self, timeout: float):
        """Stop the due loop and give in-flight posts up to `timeout` seconds to finish. A post still
        running then is given up: its events stay queued in Redis, and once its lock expires any
        chip process posts them (Courier may then get some twice)."""
        if self._loop is not None:
            self._loop.stop()
        pending = [t for t in list(self._flushing.values()) + [self._tick_task] if t and not t.done()]
        await settle(pending, timeout, "Courier posts", "their events stay queued in Redis for the next poster")
