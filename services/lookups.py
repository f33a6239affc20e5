"""Cached reads of RapidPro's tables: channels and users for about 30 s, known chats for longer.

A chat's URN never moves to another contact, so a found one can be kept; a missing one is not
cached, because Courier creates it a moment after `chat_started`.
"""

import logging

from cachetools import TTLCache

from models import Channel, ContactURN, Database, User

logger = logging.getLogger(__name__)

_MISSING = object()


class Lookups:
    def __init__(self, db: Database, ttl: float = 30.0, chat_ttl: float = 600.0, size: int = 100_000):
        self.db = db
        self._channels = TTLCache(maxsize=10_000, ttl=ttl)
        self._users = TTLCache(maxsize=10_000, ttl=ttl)
        self._contacts = TTLCache(maxsize=size, ttl=chat_ttl)

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
        """The chat's URN read fresh (its display, the visitor's email, may have changed)."""
        urn = await self.db.run(ContactURN.for_chat, org_id, chat_id)
        if urn is not None:
            self._contacts[(org_id, chat_id)] = urn.contact_id
        return urn
