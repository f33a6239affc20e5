"""Pushes each chat's outbox to the sockets bound to it in this process, and pushes again what is
not acknowledged in time.

Invariants, for each chat this process holds (tests/services/test_invariants.py tests what they
promise a widget):
- `_pumping[key]`: absent, no pump of the chat runs; False, one runs; True, one runs and was asked
  for again meanwhile, so it reads the outbox once more before it ends. Never two pumps of a chat.
- A message goes from its wake-up straight to the sockets (offer) only when nothing older can be
  waiting unsent: no pump under way, the chat not `_deep`, every socket synced and not stalled, its
  window not full, the message not acked there. Otherwise it is pumped. So a socket gets a chat's
  messages first in outbox order; pushing an unacked one again repeats it, never reorders.
- `_deep` holds the chat while its last read filled a window: the outbox may hold more than was
  pushed, so an ack wakes a pump.
- A session's `pushed`: what it was sent and has not acked, each pushed again only once due, at
  most max_attempts times. `acked`: what was acked, not pushed to it again while there. `stalled`:
  set while pushing waits for the socket to drain, and then nothing goes to it straight.
- A push writes a frame only while the socket's unsent bytes (transport.buffered()) and the frame
  stay within max_buffer, or nothing is unsent (a larger frame goes alone).

A process listens on its wake channels (services/store/pubsub.py), subscribed to the one of every chat
it holds: a message queued on any process reaches the holder in one publish, which carries the frame,
so the usual case pushes it with no read of the outbox. Pumping (reading the outbox) starts only
once Redis confirms a subscription, so nothing queued in between is missed.
"""

import asyncio
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.backoff import RetryPolicy
from services.delivery.outbox import Outbox
from services.delivery.sessions import Pushed, Registry, Session, Stall
from services.errors import Unavailable
from services.events import queued_at
from services.metrics import Metrics
from services.periodic import Periodic
from services.shutdown import settle
from services.store import keys
from services.store.pubsub import WakeChannels

logger = logging.getLogger(__name__)


class Delivery:
    def __init__(
        self,
        redis: aioredis.Redis,
        outbox: Outbox,
        registry: Registry,
        wakes: WakeChannels,
        *,
        ack_timeout: float = 15.0,
        max_attempts: int = 10,
        window: int = 100,
        retry: RetryPolicy = RetryPolicy(),
        max_buffer: int = 1024 * 1024,
        stall_timeout: float = 30.0,
        metrics: Metrics,
    ):
        self.redis = redis
        self.outbox = outbox
        self.registry = registry
        self.ack_timeout = ack_timeout
        self.max_attempts = max_attempts
        self.window = window
        self.retry = retry
        self.max_buffer = max_buffer
        self.stall_timeout = stall_timeout
        self.metrics = metrics
        self.wakes = wakes
        self._listener = None
        self._stopping = False
        self._retry = Periodic(self._retry_due, retry.tick, name="the re-push loop")
        self._pumping: dict[str, bool] = {}  # chat key -> another pump was asked for meanwhile
        self._deep: set[str] = set()  # chats whose outbox holds more than one window
        self._tasks: set[asyncio.Task] = set()

    async def start(self):
        await self.wakes.start()
        self._listener = asyncio.get_running_loop().create_task(self._listen())
        self._retry.start()

    @property
    def listening(self) -> bool:
        """Whether the wake listener runs: from start() until stop() (or a crash) has ended it."""
        return self._listener is not None and not self._listener.done()

    async def stop(self, timeout: float = 2.0):
        """Stop the retry loop, the wake listener and the pumps under way, then close the pub/sub
        connection, waiting at most `timeout` seconds for each. A bound hit gives up only pushing
        (every message stays in its outbox for the chat's next socket) and, at worst, leaves the
        listener task behind to die with the loop.

        The listener is told to stop by a flag as well as cancelled: redis-py writes each command
        through asyncio.wait_for, which can swallow a cancellation that arrives just as the write
        completes, and a listener relying on the cancellation alone would run on, and this stop
        (and chip's SIGTERM) would wait for it for ever."""
        self._stopping = True
        await self._retry.stop(timeout)
        if self._listener is not None:
            self._listener.cancel()
            await settle([self._listener], timeout, "the wake listener", "closing its pub/sub connection under it")
        if self._tasks:
            await settle(list(self._tasks), timeout, "pushes", "their messages stay in the outboxes")
        if self._listener is not None:
            await settle(
                [self.wakes.aclose()],
                timeout,
                "closing the pub/sub connection",
                "the socket is left to the process's exit",
            )

    # binding

    async def bind(self, session: Session):
        """Start delivering the chat's outbox to this session."""
        if self.registry.add(session):
            try:
                await self.wakes.join(keys.wake_channel(session.key))
            except (RedisError, OSError) as e:
                # the listener resubscribes every held chat when Redis is back
                logger.warning("could not subscribe chat=%s: %s", session.chat_id, e)
        else:
            self.wake(session.key)

    def unbind(self, session: Session):
        if self.registry.remove(session):
            self._deep.discard(session.key)
            if self._listener is not None:
                self._spawn(self._unsubscribe(session.key))

    async def _unsubscribe(self, key: str):
        try:
            if not self.registry.sessions(key):
                await self.wakes.unsubscribe(keys.wake_channel(key))
        except (RedisError, OSError) as e:
            logger.debug("unsubscribe chat=%s failed: %s", key, e)

    def awaits_ack(self, session: Session, msg_id) -> bool:
        """Whether this message was pushed to this socket and is not acknowledged yet."""
        return keys.msg_key(msg_id) in session.pushed

    def acked(self, key: str, msg_key: str):
        """A message of this chat was acknowledged: stop pushing it to this process's sockets."""
        now, queued = time.monotonic(), None
        for session in self.registry.sessions(key):
            state = session.pushed.pop(msg_key, None)
            if state is not None:
                queued = state.queued
            session.acked[msg_key] = now
        if queued is not None:
            self.metrics.delivery.observe(max(0.0, time.time() - queued))
        if key in self._deep:
            self.wake(key)  # an ack makes room in the window for what waits behind it

    # pumping

    def offer(self, key: str, msg_key: str, frame: str):
        """A message was just queued for the chat: push it as it came, saving a read of the outbox,
        unless something older may still be waiting there (a socket not yet synced with the outbox,
        a pump under way, a deep or stalled outbox, a full window of unacked messages) or the
        message was acked before (a late wake-up, or Courier queueing it again); then pump the
        outbox, which keeps the order and knows which."""
        sessions = self.registry.sessions(key)
        if not sessions:
            return
        if (
            not frame
            or key in self._pumping
            or key in self._deep
            or any(
                not s.synced or s.stalled is not None or len(s.pushed) >= self.window or msg_key in s.acked
                for s in sessions
            )
        ):
            self.wake(key)
            return
        now = time.monotonic()
        for session in sessions:
            self._push(session, ((msg_key, frame),), now)

    def wake(self, key: str):
        """Push whatever the chat's outbox holds that its sockets have not been sent (coalesced)."""
        if key in self._pumping:
            self._pumping[key] = True
            return
        self._pumping[key] = False
        self._spawn(self._pump_loop(key))

    async def _pump_loop(self, key: str):
        try:
            while True:
                await self._pump(key)
                if not self._pumping.get(key):
                    break
                self._pumping[key] = False
        except Unavailable:
            # logged by the outbox; what this pump was to push may still wait there, so the sockets
            # take no message straight from a wake-up until the retry loop's pump gets through
            for session in self.registry.sessions(key):
                session.synced = False
        finally:
            self._pumping.pop(key, None)

    async def _pump(self, key: str):
        if not self.registry.sessions(key):
            return
        read_at = time.monotonic()
        entries = await self.outbox.window(key, self.window)
        if len(entries) < self.window:
            self._deep.discard(key)
        else:
            self._deep.add(key)
        now = time.monotonic()
        for session in self.registry.sessions(key):
            # an ack that came in while this window was read leaves it stale: skip what was acked
            session.acked = {k: at for k, at in session.acked.items() if at >= read_at}
            self._push(session, entries, now)
            session.synced = True
            if len(entries) < self.window:
                # the whole outbox was read: anything else this socket was sent is gone (acked)
                present = {msg_key for msg_key, _ in entries}
                for msg_key in [k for k in session.pushed if k not in present]:
                    del session.pushed[msg_key]

    def _push(self, session: Session, entries, now: float):
        """Send, in outbox order, what this socket has not had or has not acked in time, while its
        unsent bytes stay under max_buffer (a frame larger than that still goes, alone)."""
        session.stalled = None
        for msg_key, frame in entries:
            if msg_key in session.acked:
                continue
            unsent = session.transport.buffered()
            if unsent and unsent + len(frame) > self.max_buffer:
                session.stalled = Stall(unsent, now)
                session.transport.when_drained(lambda: self.wake(session.key))
                return
            state = session.pushed.get(msg_key)
            if state is None:
                state = session.pushed[msg_key] = Pushed(queued_at(frame))
            elif state.due > now:
                continue
            elif state.attempts >= self.max_attempts:
                if state.attempts == self.max_attempts:
                    state.attempts += 1  # counted once; the retry loop ignores it from now on
                    self.metrics.failed.inc()
                    logger.warning(
                        "stopped pushing chat=%s msg=%s after %d attempts", session.chat_id, msg_key, self.max_attempts
                    )
                continue
            state.attempts += 1
            state.due = (
                now + self.ack_timeout
                if state.attempts == 1
                else now + max(self.ack_timeout, self.retry.repush.delay(state.attempts))
            )
            if not session.transport.send_text(frame):
                return
            if state.attempts > 1:
                self.metrics.retried.inc()
                logger.info("pushing again chat=%s msg=%s attempt=%d", session.chat_id, msg_key, state.attempts)
            else:
                self.metrics.pushed.inc()

    def _retry_due(self):
        now = time.monotonic()
        for key in self.registry.chats():
            sessions = self.registry.sessions(key)
            for session in sessions:
                if session.acked:
                    # a tombstone outlives any outbox read or wake-up that was in flight at the ack
                    session.acked = {k: at for k, at in session.acked.items() if now - at < self.ack_timeout}
            if any(not session.synced or self._drained(session, now) for session in sessions) or any(
                # <=: one more pump after the last attempt's timeout counts the message as failed
                state.due <= now and state.attempts <= self.max_attempts
                for session in sessions
                for state in session.pushed.values()
            ):
                self.wake(key)

    def _drained(self, session: Session, now: float) -> bool:
        """Whether a stalled socket can take more; one that has not drained at all for stall_timeout
        is not reading: it is closed, and its messages wait in the outbox for the next visit."""
        if session.stalled is None:
            return False
        current = session.transport.buffered()
        if current < session.stalled.unsent:
            return True
        if now - session.stalled.since > self.stall_timeout:
            logger.info("closing a socket that stopped reading chat=%s unsent=%d", session.chat_id, current)
            self.unbind(session)
            session.transport.close(1008, "not reading")
        return False

    # the wake listener

    async def _listen(self):
        failures = 0
        await self._subscribe_held()
        while not self._stopping:
            try:
                if not self.wakes.subscribed:
                    # nothing held, or the subscriptions failed while Redis was away: try them again
                    if self.registry.chats():
                        failures += 1
                        await asyncio.sleep(self.retry.reconnect.delay(failures))
                    else:
                        await asyncio.sleep(0.05)
                    if self.registry.chats():
                        await self._subscribe_held()
                    continue
                wake = await self.wakes.next(timeout=1.0)
                failures = 0
                if wake is None:
                    continue
                if wake.kind == "message":
                    msg_key, _, frame = wake.data.decode().partition("\n")
                    self.offer(keys.chat_from_wake(wake.channel), msg_key, frame)
                else:  # subscribed: read what was queued before
                    self.wake(keys.chat_from_wake(wake.channel))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as e:
                if self._stopping:
                    return  # stop() closed the connection under a listener that outlived its bound
                failures += 1
                delay = self.retry.reconnect.delay(failures)
                logger.warning("lost the wake channel, reconnecting in %.1f s: %s", delay, e)
                await asyncio.sleep(delay)
                await self._subscribe_held()

    async def _subscribe_held(self):
        """Subscribe every chat this process holds (after a reconnect, confirmations pump them all)."""
        held = [keys.wake_channel(key) for key in self.registry.chats()]
        try:
            await self.wakes.subscribe(*held)
        except (RedisError, OSError) as e:
            logger.debug("resubscribe failed: %s", e)

    def _spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
