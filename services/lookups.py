"""Cached reads of RapidPro's tables: channels and users for about 30 s, known chats for longer.

A chat's URN never moves to another contact, so a found one can be kept; a missing one is not
cached, because Courier creates it a moment after `chat_started`.
"""

import asyncio
import logging

from cachetools import TTLCache

from models import Channel, ContactURN, Database, User

logger = logging.getLogger(__name__)

_MISSING = object()
URN_BATCH = 1000  # chats read with one query at most: a few thousand take a worker thread tens of ms


class Lookups:
    def __init__(self, db: Database, ttl: float = 30.0, chat_ttl: float = 600.0, size: int = 100_000):
        self.db = db
        self._channels = TTLCache(maxsize=10_000, ttl=ttl)
        self._users = TTLCache(maxsize=10_000, ttl=ttl)
        self._contacts = TTLCache(maxsize=size, ttl=chat_ttl)
        self._resuming: dict[int, list] = {}  # org -> [(chat ID, future)] asked for this turn
        self._reads: set[asyncio.Task] = set()

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
        loop = asyncio.get_running_loop()
        if not self._resuming:
            loop.call_soon(self._read_urns)
        future = loop.create_future()
        self._resuming.setdefault(org_id, []).append((chat_id, future))
        urn = await future
        if urn is not None:
            self._contacts[(org_id, chat_id)] = urn.contact_id
        return urn

    def _read_urns(self):
        batches, self._resuming = self._resuming, {}
        for org_id, waiting in batches.items():
            for start in range(0, len(waiting), URN_BATCH):
                task = asyncio.get_running_loop().create_task(self._read(org_id, waiting[start:start + URN_BATCH]))
                self._reads.add(task)
                task.add_done_callback(self._reads.discard)

    async def _read(self, org_id: int, waiting: list):
        found = error = None
        try:
            found = await self.db.run(ContactURN.for_chats, org_id, list({chat_id for chat_id, _ in waiting}))
        except Exception as e:  # noqa: BLE001 - Unavailable, usually: every resume waiting on the read gets it
            error = e
        finally:
            for chat_id, future in waiting:
                if future.done():  # its resume was cancelled meanwhile (the socket closed)
                    continue
                if found is not None:
                    future.set_result(found.get(chat_id))
                elif error is not None:
                    future.set_exception(error)
                else:  # this read was cancelled (the loop is closing): no resume waits for ever
                    future.cancel()
