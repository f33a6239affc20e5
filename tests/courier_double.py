"""The Courier double: demo/courier.py's Courier (a real HTTP server on loopback doing what
Courier's CHP handler does to the database), plus what tests need to watch and break it.

It records every body received (parsed, and its size in bytes as sent) and every event handled, and
each chat that had two requests in flight at once (`overlaps`: chip posts a chat's events under its
lock, one request at a time). `fail_with` makes it answer with that
status and Courier's error body naming `fail_error` (by default the 400 of a wrong secret), for
`fail_times` requests and then as usual, or every request while `fail_times` is None; `delay`
makes it slow, like a busy Courier. `status_error` makes it refuse, with that error, the first
msg_status of a request that names its message by `msg_id` only (as Courier does since it reads only
`msg_uuid`), after writing the events before it. Like Courier, it reads no more than MAX_BODY bytes
of a body, and its refusals always have Courier's own error body.
"""

import asyncio
import json

from demo.courier import Courier, error_body
from tests.polling import wait_until

# what Courier reads of a request body (handlers.maxBodyReadBytes); a fact of its own here, not
# chip's constant, so that a wrong one in chip shows
MAX_BODY = 1024 * 1024


class CourierDouble(Courier):
    def __init__(self, dsn: str):
        super().__init__(dsn)
        self.requests: list = []  # every body received
        self.raw_sizes: list = []  # the size in bytes of every body, as chip sent it
        self.overlaps: list = []  # chat ids that had a request come while another of theirs was in flight
        self._in_flight: dict = {}  # chat id -> its requests being handled now
        self.events: list = []  # (chat_id, event) for every event handled
        self.fail_with = 0
        self.fail_error = "secret incorrect"
        self.fail_times = None
        self.delay = 0.0
        self.status_error = None
        self.sent_to: dict[str, str] = {}  # message id or uuid -> the chat Courier sent it to

    async def receive(self, channel_uuid: str, raw: bytes) -> tuple:
        body = json.loads(raw or b"null")
        self.requests.append(body)
        self.raw_sizes.append(len(raw))
        chat_id = body.get("chat_id") if isinstance(body, dict) else None
        if self._in_flight.get(chat_id):
            self.overlaps.append(chat_id)
        self._in_flight[chat_id] = self._in_flight.get(chat_id, 0) + 1
        try:
            return await self._answer(channel_uuid, raw)
        finally:
            self._in_flight[chat_id] -= 1

    async def _answer(self, channel_uuid: str, raw: bytes) -> tuple:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with and self.fail_times != 0:
            if self.fail_times is not None:
                self.fail_times -= 1
            return self.fail_with, error_body(self.fail_error)
        if len(raw) > MAX_BODY:  # what Courier reads of it is cut off mid-JSON
            return 400, error_body("unable to parse request JSON: unexpected end of JSON input")
        if self.status_error:
            return await self._receive_by_uuid(channel_uuid, raw)
        return await super().receive(channel_uuid, raw)

    async def _receive_by_uuid(self, channel_uuid: str, raw: bytes) -> tuple:
        body = json.loads(raw)
        events = body.get("events", [])
        bad = next(
            (
                i
                for i, e in enumerate(events)
                if e.get("type") == "msg_status" and "msg_uuid" not in e.get("status", {})
            ),
            None,
        )
        if bad is None:
            return await super().receive(channel_uuid, raw)
        if bad:  # Courier writes the events before the one it fails on
            await super().receive(channel_uuid, json.dumps({**body, "events": events[:bad]}).encode())
        return 400, error_body(self.status_error)

    def sent(self, chat_id: str, msg: dict):
        """Courier sent this message to the chat (tests post it to chip's /wc/send themselves)."""
        self.sent_to[str(msg.get("uuid") or msg.get("id")).lower()] = chat_id

    async def handled(self, channel_uuid: str, chat_id: str, events: list):
        # like Courier, a status belongs to its message's chat, whichever chat the request names
        self.events.extend((self._chat_of(event) or chat_id, event) for event in events)

    def _chat_of(self, event: dict) -> str | None:
        if event["type"] != "msg_status":
            return None
        status = event["status"]
        return self.sent_to.get(str(status.get("msg_uuid") or status.get("msg_id")).lower())

    def of_type(self, kind: str, chat_id: str = None) -> list:
        return [e for c, e in self.events if e["type"] == kind and (chat_id is None or c == chat_id)]

    async def wait_for(self, predicate, timeout: float = 5.0):
        if not await wait_until(predicate, timeout, interval=0.01):
            raise AssertionError(f"courier double: condition not met in {timeout}s; events={self.events}")
