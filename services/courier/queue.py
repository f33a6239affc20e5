"""Events bound for Courier (chat_started, msg_in, msg_status), kept in Redis until Courier takes them.

Invariants, for each chat (tests/services/test_invariants.py and courier/test_request_size.py test
what they promise Courier):
- Only the holder of the chat's lock posts its events. A script takes the lock with the events it
  reads (courier_take, or courier_ack for an ack); it expires after `grace`, longer than a post
  may take, so a crashed holder cannot keep it.
- The holder posts one request at a time and nothing else posts meanwhile, so nothing is posted
  twice while the lock is held. COMMIT (courier_commit) drops what Courier took and renews the
  lock, or lets it go once the list is empty; a holder that lost it commits nothing. A retried
  post or an error lets it go in _flush_locked's `finally`.
- Order: events are appended as they come and posted from the head, so Courier gets them in the
  order they were queued. A request ends at the first event that is not REPEATABLE: a request
  posted again repeats only msg_status events.
- Size: a request's body, its envelope (chat_id, secret) included, is at most MAX_BODY; an event
  too large for any request is given up.
- In one process, one flush per chat (`_flushing`); a kick meanwhile has it go round once more.

Each chat has a list of events; whoever holds the chat's lock posts them in order, several per
request. A 5xx, no answer, or a 400 that is Courier's own failure (services/courier/client.py tells them
apart) leaves them queued and puts the chat on the due set with a capped, jittered backoff; this
process tries again when it is due, and if it has gone by then, the due loop of any chip process
(reading a few shards of the due sets at each look) picks them up, until --inbound-expiry gives
them up. A 4xx that retrying cannot help drops them with an error line.

A request stays within Courier's body limit, and ends with the first event that Courier must not
get twice (anything but a msg_status): Courier writes the events before the one it fails on, then
answers 400, and the whole request is posted again.

A msg_status is chip's report, a msg_in the visitor's words: a status Courier refuses for good, or
keeps refusing for longer than `status_expiry`, is given up and the visitor's events behind it are
posted at once, in their order. Requests of statuses alone, from chats of one channel, share a
post (services/courier/statuses.py).
"""

import asyncio
import logging
import time

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services import events
from services.backoff import RetryPolicy
from services.courier.client import MAX_BODY, CourierClient, Outcome
from services.courier.statuses import StatusPosts
from services.lookups import Lookups
from services.metrics import Metrics
from services.periodic import Periodic
from services.shutdown import settle
from services.store import indexes, keys
from services.store.client import redis_errors
from services.store.deadletters import DeadLetters
from services.store.indexes import Rotation, sweep
from services.store.lock import Lock, Locks
from services.store.scripts import Scripts

logger = logging.getLogger(__name__)

# chats per shard whose first event /metrics reads for the backlog's age: 1024 in all
BACKLOG_SAMPLE = 8

# the only event that Courier may be given twice without harm: it sets a status again
REPEATABLE = frozenset({"msg_status"})


def encode_event(event: dict) -> bytes:
    """An event as stored in a chat's list: with the time it was queued, for --inbound-expiry."""
    return orjson.dumps({"t": time.time(), "e": event})


class CourierQueue:
    def __init__(
        self,
        redis: aioredis.Redis,
        scripts: Scripts,
        locks: Locks,
        client: CourierClient,
        lookups: Lookups,
        metrics: Metrics,
        *,
        expiry: float = 86400.0,
        status_expiry: float = 30.0,
        batch: int = 50,
        retry: RetryPolicy = RetryPolicy(),
        answer_wait: float = 10.0,
        dead_letters: DeadLetters = None,
    ):
        self.redis = redis
        self.dead_letters = dead_letters  # where given-up events are kept (None: only logged and counted)
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
        self._push = scripts.load("courier_push")
        self._take = scripts.load("courier_take")
        self._commit = scripts.load("courier_commit")
        self._ack = scripts.load("courier_ack")
        self.locks = locks
        self._flushing: dict[str, asyncio.Task] = {}
        self._dirty: set[str] = set()
        self.statuses = StatusPosts(client)
        self._retries: dict[str, asyncio.TimerHandle] = {}  # chats this process put back, by chat key
        self._rotation = Rotation()
        self._stopped = False
        self._handing_over: set[asyncio.Task] = set()
        self._due = Periodic(self._run_due, self.retry.tick, jitter=0.1, name="the courier due loop")

    @property
    def due_score(self) -> float:
        """Where a chat with fresh events goes on the due set: after a crashed flusher's lock expires."""
        return time.time() + self.grace

    @redis_errors("queueing a courier event")
    async def push(self, key: str, event: dict) -> bool:
        """Queue an event durably; True if the chat is backing off (Courier failed it lately)."""
        attempts = await self._push.replicated(
            events=keys.courier_events(key),
            due=keys.courier_due_of(key),
            attempts=keys.courier_attempts(key),
            event=encode_event(event),
            score=self.due_score,
            chat=key,
        )
        return attempts is not None

    @redis_errors("acknowledging a message")
    async def report(self, key: str, msg_key: str, status: str, post: bool = True) -> bool:
        """The message leaves the chat's outbox and Courier is told its `status`, in one step, so that
        an ack is never half done; False if the outbox had no such message (acked already, or
        unknown). With `post`, the chat's events are posted next, the lock taken in that same step
        when this process is not posting them already."""
        lock = self.lock(key) if post else None
        removed, *taken = await self._ack(
            order=keys.outbox_order(key),
            frames=keys.outbox_frames(key),
            outboxes=keys.outboxes_of(key),
            events=keys.courier_events(key),
            due=keys.courier_due_of(key),
            lock=keys.courier_lock(key),
            msg_key=msg_key,
            chat=key,
            status=encode_event(events.courier_msg_status(msg_key, status)),
            score=self.due_score,
            token=lock.token if lock else "",
            ms=lock.ms if lock else 0,
            n=self.batch,
        )
        if not removed:
            return False
        if post:
            self.kick(key, lock, taken or None)
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
        return None if self._stopped or self._posting(key) else self._claim(key)

    def _claim(self, key: str) -> Lock:
        return self.locks.claim(keys.courier_lock(key), int(self.grace * 1000))

    def kick(self, key: str, lock: Lock = None, taken: list = None) -> asyncio.Future:
        """Start posting the chat's events, or have the running flush go round once more. `taken`:
        the events a script read when it took `lock`; they are posted first, and the lock let go.
        Once stopped, nothing new is posted: a post started then would be cut off by the closing
        client after Courier took it, and posted again by the next poster."""
        if self._stopped:
            task = asyncio.get_running_loop().create_task(self._hand_over(key))
            self._handing_over.add(task)
            task.add_done_callback(self._handing_over.discard)
            done = asyncio.get_running_loop().create_future()
            done.set_result(Outcome.FAILED)
            return done
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
            raw = await self._take(
                lock=lock.key, events=keys.courier_events(key), token=lock.token, ms=lock.ms, n=self.batch
            )
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
                self._give_up(
                    key,
                    [orjson.loads(item)["e"] for item in raw],
                    "channel_gone",
                    "the channel is gone from the database",
                )
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
        outcome = None
        if all(e["type"] in REPEATABLE for e in events):
            outcome = await self.statuses.post(channel_uuid, secret, chat_id, events)
        if outcome is None:  # not statuses alone, or a shared post Courier refused a status of
            outcome = await self.client.post_events(channel_uuid, secret, chat_id, events)
        if outcome is Outcome.STATUS_REJECTED or (outcome is Outcome.REFUSED and waited > self.status_expiry):
            statuses = [e for e in events if e["type"] in REPEATABLE]
            if statuses:
                reason = "status_rejected" if outcome is Outcome.STATUS_REJECTED else "status_expired"
                self._give_up(key, statuses, reason, "so that the visitor's events behind them go on")
                events = events[len(statuses) :]  # only a request's last event is not REPEATABLE
                outcome = await self.client.post_events(channel_uuid, secret, chat_id, events) if events else Outcome.OK
        if outcome in (Outcome.REJECTED, Outcome.STATUS_REJECTED):
            # a refusal Courier makes for good is of the whole request (its secret, its chat id)
            self._give_up(key, events, "rejected", "courier refused them for good")
        return outcome

    def _give_up(self, key: str, events: list, reason: str, why: str):
        """Events that will never be posted: an error line, chip_courier_events_given_up{reason}, and a
        dead letter each. The letters join this turn's pipeline, ahead of the commit that drops the
        events from the chat's list, so that they are written before the events leave it."""
        kinds = ",".join(sorted({e.get("type", "?") for e in events}))
        logger.error("giving up %d courier event(s) (%s) of chat %s, %s: %s", len(events), kinds, key, reason, why)
        self.metrics.courier_given_up.labels(reason).inc(len(events))
        if self.dead_letters is not None:
            self.dead_letters.keep(
                key, reason, [{"kind": "courier", "event": e} for e in events], why, self.client.troubles.of(key)
            )

    async def _commit_handled(self, key: str, lock: Lock, handled: int) -> int:
        return await self._commit(
            events=keys.courier_events(key),
            due=keys.courier_due_of(key),
            attempts=keys.courier_attempts(key),
            lock=lock.key,
            handled=handled,
            chat=key,
            token=lock.token,
            ms=lock.ms,
        )

    def _next_request(self, key: str, raw: list, room: int) -> tuple[int, list, float]:
        """How many of the events read (`raw`, oldest first) the next request covers, those of them
        to post (as many as fit in `room` bytes, up to the first one that is not REPEATABLE), and how
        long the oldest REPEATABLE among them has waited. Events older than the expiry, and one too
        large for any request, are given up, loudly, in a request of their own that posts nothing: the
        commit drops them at once, where a post that failed would leave them to be given up again."""
        now, events, used, waited = time.time(), [], 0, 0.0
        for count, item in enumerate(raw, 1):
            stored = orjson.loads(item)
            event = stored["e"]
            size = len(orjson.dumps(event))
            doomed = now - stored["t"] > self.expiry or size > room
            if (doomed and events) or (not doomed and not events and count > 1):
                return count - 1, events, waited  # what is given up and what is posted go apart
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
        # this process tries again on time; the due set is there for when it has gone by then
        if key in self._retries:
            self._retries[key].cancel()
        self._retries[key] = asyncio.get_running_loop().call_later(delay, self._retry, key)

    def _retry(self, key: str):
        del self._retries[key]
        self._kick_if_due(key)

    def _kick_if_due(self, key: str):
        if key not in self._flushing:
            self.kick(key)

    @staticmethod
    def ask_backlog(pipe) -> int:
        """Queue on `pipe` (/metrics's refresh) the first reads of the backlog: the chats waiting for
        Courier, and those due soonest in each shard (BACKLOG_SAMPLE), so that a scrape costs the
        same however long Courier has been down. Returns how many replies they take, for backlog_of()."""
        indexes.ask_count(pipe, keys.courier_due)
        indexes.ask_soonest(pipe, keys.courier_due, BACKLOG_SAMPLE)
        return 2 * keys.SHARDS

    async def backlog_of(self, replies: list) -> tuple[int, float]:
        """(chats with events waiting for Courier, seconds the oldest of their first events has waited)
        from ask_backlog()'s replies; the first events of the sample are read in one more round trip,
        made only when some chat waits. RedisError if Redis fails."""
        waiting, sample = sum(replies[: keys.SHARDS]), indexes.chats_of(replies[keys.SHARDS :])
        if not sample:
            return waiting, 0.0
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in sample:
                pipe.lindex(keys.courier_events(key), 0)
            firsts = [orjson.loads(raw)["t"] for raw in await pipe.execute() if raw]
        return waiting, max(0.0, time.time() - min(firsts)) if firsts else 0.0

    # the due loop

    def start(self):
        self._due.start()

    async def _run_due(self):
        """Kick what is due in the next few shards: chats another process put back and is gone from, or
        whose poster died holding their lock (this process's own retries have their timers)."""
        try:
            due = await sweep(self.redis, keys.courier_due, time.time(), 200, self._rotation.next())
        except (RedisError, OSError) as e:
            logger.debug("due courier events not read: %s", e)
            return
        for key in due:
            self._kick_if_due(key)

    async def stop(self, timeout: float):
        """Stop the due loop and give in-flight posts up to `timeout` seconds to finish. A post still
        running then is given up: its events stay queued in Redis, and once its lock expires any
        chip process posts them (Courier may then get some twice)."""
        self._stopped = True
        await self._due.stop(timeout)
        for timer in self._retries.values():
            timer.cancel()
        self._retries.clear()
        self.statuses.flush()
        pending = [t for t in self._flushing.values() if not t.done()]
        await settle(
            pending + list(self._handing_over),
            timeout,
            "Courier posts",
            "their events stay queued in Redis for the next poster",
        )

    async def _hand_over(self, key: str):
        """Make a chat this process was asked to post once stopped due now, for the next poster (its
        events were put on the due set a grace period ahead, for a poster that dies)."""
        try:
            await self.redis.zadd(keys.courier_due_of(key), {key: time.time()}, xx=True)
        except (RedisError, OSError) as e:
            logger.warning("chat %s left to the next poster after its grace period: %s", key, e)
