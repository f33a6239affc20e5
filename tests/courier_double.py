"""The Courier double: demo/courier.py's Courier (a real HTTP server on loopback doing what
Courier's CHP handler does to the database), plus what tests need to watch and break it.

It records every body received and every event handled; `fail_with` makes it answer every request
with that status, to fake an outage; `delay` makes it slow, like a busy Courier.
"""

import asyncio
import json

from demo.courier import Courier
from tests.polling import wait_until


class CourierDouble(Courier):
    def __init__(self, dsn: str):
        super().__init__(dsn)
        self.requests: list = []   # every body received
        self.events: list = []     # (chat_id, event) for every event handled
        self.fail_with = 0
        self.delay = 0.0

    async def receive(self, channel_uuid: str, raw: bytes) -> tuple:
        self.requests.append(json.loads(raw or b"null"))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with:
            return self.fail_with, {"error": "courier is having a bad day"}
        return await super().receive(channel_uuid, raw)

    async def handled(self, channel_uuid: str, chat_id: str, events: list):
        self.events.extend((chat_id, event) for event in events)

    def of_type(self, kind: str, chat_id: str = None) -> list:
        return [e for c, e in self.events if e["type"] == kind and (chat_id is None or c == chat_id)]

    async def wait_for(self, predicate, timeout: float = 5.0):
        if not await wait_until(predicate, timeout, interval=0.01):
            raise AssertionError(f"courier double: condition not met in {timeout}s; events={self.events}")
