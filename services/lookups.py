"""Cached reads of RapidPro's tables. None of them outlives a change in RapidPro by long:

- a channel (its org's and its own is_active, its secret) for CHANNEL_TTL seconds, so a
  deactivated channel or org, or a rotated secret, is noticed within 5 s;
- a user, and whether the channel's org may show it (active, and a member or staff), for USER_TTL;
- a chat's contact (its id, is_active and status) for CHAT_TTL: a deleted, blocked or stopped
  contact is noticed within 30 s. A missing chat is not cached, because Courier creates it a
  moment after `chat_started`; resumes read the chat afresh.
"""

import asyncio
import logging

from cachetools import TTLCache

from models import Channel, ContactURN, Database, User
from services.store.batching import TurnBatch

logger = logging.getLogger(__name__)

_MISSING = object()
URN_BATCH = 1000  # chats read with one query at most, so that no read holds a worker thread for long
CHANNEL_TTL = 5.0
USER_TTL = 5.0
CHAT_TTL = 30.0


class Lookups:
    def __init__(self, db: Database, size: int = 100_000):
        self.db = db
        self._channels = TTLCache(maxsize=10_000, ttl=CHANNEL_TTL)
        self._users = TTLCache(maxsize=10_000, ttl=USER_TTL)
        self._contacts = TTLCache(maxsize=size, ttl=CHAT_TTL)
        self._resumes = TurnBatch(self._read_urns)

    async def stop(self, timeout: float = 2.0):
        """Let the batched reads under way end (or cancel them) before the database closes."""
        await self._resumes.wait(timeout)

    async def channel(self, channel_uuid: str):
        """The active CHP channel of an active org with this UUID, or None."""
        return await self._cached(self._channels, Channel.active_chp, channel_uuid)

    async def user(self, org_id: int, user_id: int):
        """The user with this id (None if there is none); `user.shown` says if this org may show it."""
        return await self._cached(self._users, User.for_org, user_id, org_id)

    async def _cached(self, cache: TTLCache, query, *key):
        """query(*key) on the database, remembered (None included) for the cache's TTL."""
        found = cache.get(key, _MISSING)
        if found is _MISSING:
            found = cache[key] = await self.db.run(query, *key)
        return found

    async def contact(self, org_id: int, chat_id: str):
        """The contact behind a chat in this org (see `contact.gone`), or None."""
        found = self._contacts.get((org_id, chat_id))
        if found is None:
            urn = await self.db.run(ContactURN.for_chat, org_id, chat_id)
            if urn is None:
                return None
            found = self._contacts[(org_id, chat_id)] = urn.contact
        return found

    async def urn(self, org_id: int, chat_id: str):
        """The chat's URN read fresh (its display, the visitor's email, may have changed).

        The URNs asked for in one turn of the loop are read with one query: after a restart every
        widget resumes at once, and a query each through the thread pool is a large part of the CPU
        a resume costs (BENCHMARKS.md, "What was tried", "Resumes read their URNs together")."""
        urn = await self._resumes.add((org_id, chat_id))
        if urn is not None:
            self._contacts[(org_id, chat_id)] = urn.contact
        return urn

    async def _read_urns(self, asked: list) -> list:
        """The URNs of (org, chat ID) pairs, in order: a query per org and per URN_BATCH chats, each
        failing only the resumes it was to answer."""
        chats: dict[int, dict] = {}  # org -> its chat IDs, once each, in order
        for org_id, chat_id in asked:
            chats.setdefault(org_id, {})[chat_id] = None
        reads = []
        for org_id, ids in chats.items():
            ids = list(ids)
            reads += [(org_id, ids[start : start + URN_BATCH]) for start in range(0, len(ids), URN_BATCH)]
        found = await asyncio.gather(
            *[self.db.run(ContactURN.for_chats, org_id, ids) for org_id, ids in reads], return_exceptions=True
        )
        answers = {}
        for (org_id, ids), urns in zip(reads, found):
            for chat_id in ids:
                answers[(org_id, chat_id)] = urns if isinstance(urns, Exception) else urns.get(chat_id)
        return [answers[pair] for pair in asked]
