"""Cached reads of RapidPro's tables: channels and users for about 30 s, known chats for longer.

A chat's URN never moves to another contact, so a found one can be kept; a missing one is not
cached, because Courier creates it a moment after `chat_started`.
"""

import asyncio
import logging

from cachetools import TTLCache

from models import Channel, ContactURN, Database, User
from services.batching import TurnBatch

logger = logging.getLogger(__name__)

_MISSING = object()
URN_BATCH = 1000  # chats read with one query at most: a few thousand take a worker thread tens of ms


class Lookups:
    def __init__(self, db: Database, ttl: float = 30.0, chat_ttl: float = 600.0, size: int = 100_000):
        self.db = db
        self._channels = TTLCache(maxsize=10_000, ttl=ttl)
        self._users = TTLCache(maxsize=10_000, ttl=ttl)
        self._contacts = TTLCache(maxsize=size, ttl=chat_ttl)
        self._resumes = TurnBatch(self._read_urns)

    async def channel(self, channel_uuid: str):
        """The active CHP channel with this UUID, or None."""
        return await self._cached(self._channels, Channel.active_chp, channel_uuid)

    async def user(self, user_id: int):
        return await self._cached(self._users, User.by_id, user_id)

    async def _cached(self, cache: TTLCache, query, key):
        """query(key) on the database, remembered (None included) for the cache's TTL."""
        found = cache.get(key, _MISSING)
        if found is _MISSING:
            found = cache[key] = await self.db.run(query, key)
        return found

    async def contact_id(self, org_id: int, chat_id: str):
        """The contact behind a chat in this org, or None."""
        found = self._contacts.get((org_id, chat_id))
        if found is None:
            urn = await self.db.run(ContactURN.for_chat, org_id, chat_id)
            if urn is None:
                return None
            found = self._contacts[(org_id, chat_id)] = urn.contact_id
        return found

    async def urn(self, org_id: int, chat_id: str):
        """The chat's URN read fresh (its display, the visitor's email, may have changed).

        The URNs asked for in one turn of the loop are read with one query: after a restart every
        widget resumes at once, and a query each through the thread pool was 0.7 of the 1.7 ms of
        CPU a resume cost (BENCHMARKS.md)."""
        urn = await self._resumes.add((org_id, chat_id))
        if urn is not None:
            self._contacts[(org_id, chat_id)] = urn.contact_id
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
            reads += [(org_id, ids[start:start + URN_BATCH]) for start in range(0, len(ids), URN_BATCH)]
        found = await asyncio.gather(*[self.db.run(ContactURN.for_chats, org_id, ids) for org_id, ids in reads],
                                     return_exceptions=True)
        answers = {}
        for (org_id, ids), urns in zip(reads, found):
            for chat_id in ids:
                answers[(org_id, chat_id)] = urns if isinstance(urns, Exception) else urns.get(chat_id)
        return [answers[pair] for pair in asked]
