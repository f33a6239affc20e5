"""Gives up outgoing messages that waited in an outbox longer than --msg-expiry.

The visitor never came back for them. If they left an email (set_email) and chip has an SMTP
server, the messages are emailed and Courier hears `sent`; otherwise Courier hears `failed`, and
each message is kept as a dead letter (services/store/deadletters.py) that an operator may replay.
Any chip process may sweep; a short Redis lock per chat (services/store/lock.py) keeps two from
doing the same chat.
"""

import logging
import time

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from models import DatabaseUnavailable
from services import events
from services.courier.queue import CourierQueue
from services.delivery.outbox import Outbox, visitor_email
from services.errors import Unavailable
from services.lookups import Lookups
from services.mailer import Mailer, one_line
from services.metrics import Metrics
from services.periodic import Periodic
from services.store import keys
from services.store.deadletters import DeadLetters
from services.store.indexes import sweep
from services.store.lock import Locks

logger = logging.getLogger(__name__)

# a store that does not answer: every chat would fail alike, so the whole sweep waits for the next tick
_STORES_DOWN = (RedisError, OSError, Unavailable, DatabaseUnavailable)


class Expiry:
    def __init__(
        self,
        redis: aioredis.Redis,
        locks: Locks,
        outbox: Outbox,
        courier: CourierQueue,
        lookups: Lookups,
        mailer: Mailer = None,
        *,
        expiry: float = 7 * 86400.0,
        interval: float = 60.0,
        metrics: Metrics,
        dead_letters: DeadLetters = None,
    ):
        self.redis = redis
        self.dead_letters = dead_letters  # where failed messages are kept (None: only reported failed)
        self.locks = locks
        self.outbox = outbox
        self.courier = courier
        self.lookups = lookups
        self.mailer = mailer
        self.expiry = expiry
        self.interval = interval
        self.metrics = metrics
        self._loop = Periodic(self._tick, interval, jitter=0.1, name="the stale message sweep")

    def start(self):
        self._loop.start()

    async def stop(self, timeout: float = 2.0):
        await self._loop.stop(timeout)

    async def _tick(self):
        try:
            await self.sweep()
        except _STORES_DOWN as e:
            logger.warning("stale message sweep skipped: %s", e)

    async def sweep(self) -> int:
        """Give up every message older than the expiry; returns how many."""
        cutoff = time.time() - self.expiry
        stale_chats = await sweep(self.redis, keys.outboxes, cutoff, 100)
        given_up = 0
        for key in stale_chats:
            try:
                given_up += await self._expire_chat(key, cutoff)
            except _STORES_DOWN:
                raise
            except Exception:  # noqa: BLE001 - one chat's bad data must not stop the sweep for every other
                logger.exception(
                    "could not give up the stale messages of chat=%s; trying it again after --msg-expiry", key
                )
                # to the back of the sweep order, so that chats that always fail never hold up the rest
                await self.outbox.reindex(key, time.time())
        return given_up

    async def _expire_chat(self, key: str, cutoff: float) -> int:
        lock = self.locks.claim(keys.expire_lock(key), 60_000)
        if not await self.locks.take(lock):
            return 0
        try:
            entries = await self.outbox.window(key, 1000)
            stale, oldest_left = [], None
            for msg_key, frame in entries:
                out = orjson.loads(frame)["msg_out"]
                queued = events.msg_time(out)
                if queued < cutoff:
                    stale.append((msg_key, out, frame))
                else:
                    oldest_left = queued
                    break
            if stale:
                status = "sent" if await self._email(key, [out for _, out, _ in stale]) else "failed"
                if status == "failed":
                    await self._keep(key, stale)
                for msg_key, _, _ in stale:
                    await self.courier.report(key, msg_key, status, post=False)
                self.courier.kick(key)
                self.metrics.given_up.labels(status).inc(len(stale))
                logger.info("gave up %d stale message(s) chat=%s status=%s", len(stale), key, status)
            await self.outbox.reindex(key, oldest_left)
            return len(stale)
        finally:
            await self.locks.release(lock)

    async def _keep(self, key: str, stale: list):
        """Keep failed messages as dead letters, before they leave the outbox (an emailed message was
        delivered, and is not kept)."""
        kept = (
            self.dead_letters.keep(
                key,
                "msg_expired",
                [{"kind": "outbox", "msg_key": msg_key, "frame": frame} for msg_key, _, frame in stale],
                f"no visitor came for it in {self.expiry:g} s; courier was told it failed",
            )
            if self.dead_letters is not None
            else None
        )
        if kept is not None:
            await kept

    async def _email(self, key: str, messages: list) -> bool:
        if self.mailer is None:
            return False
        channel_uuid, chat_id = keys.split_chat_key(key)
        channel = await self.lookups.channel(channel_uuid)
        # read fresh: a visitor who has since stopped, been blocked or been deleted is never emailed
        urn = await self.lookups.urn(channel.org_id, chat_id) if channel else None
        if urn is None or urn.contact.gone:
            return False
        email = await visitor_email(self.outbox, self.lookups, channel, chat_id, urn)
        if not email:
            return False
        lines = []
        for out in messages:
            sender = one_line(out.get("user", {}).get("name") or channel.name or "us")
            lines.append(f"{sender}: {out['text']}")
            lines.extend(f"  {attachment.split(':', 1)[-1]}" for attachment in out.get("attachments", []))
        body = (
            "While you were away, you were sent these messages:\n\n"
            + "\n".join(lines)
            + "\n\nCome back to the chat to reply.\n"
        )
        return await self.mailer.send(email, f"Your messages from {channel.name or 'our chat'}", body)
