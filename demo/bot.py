"""The Courier simulator's bot: answers each visitor message through chip's /wc/send, as RapidPro
and Courier would, so every kind of `chat_out` shows up in the demo.

A visitor's first message gets the welcome flow (text with an image and a PDF attached, then a
question with quick replies); later ones get a flow answer for a known topic, or a reply "from"
the staff user (origin `chat`, with a name and an avatar). Each reply is first inserted into
msgs_msg like RapidPro does, then posted to chip; its status follows what chip answered.
"""

import asyncio
import dataclasses
import json
import logging

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from demo.courier import Courier
from demo.seed import Seed

logger = logging.getLogger(__name__)

TOPICS = ["Opening hours", "Today's menu", "Talk to a person"]


@dataclasses.dataclass(frozen=True)
class Reply:
    text: str
    attachments: tuple = ()
    quick_replies: tuple = ()
    staff: bool = False  # sent by the staff user (origin chat) rather than by the flow


def replies(text: str, first: bool, public_url: str) -> list:
    """What the bot says to one visitor message."""
    static = f"{public_url}/wc/demo/static"
    asked = text.lower()
    if first:
        return [
            Reply(
                "Hi there, welcome to Nyaruka Coffee! Here's what's brewing today.",
                attachments=(f"image/svg+xml:{static}/img/menu.svg", f"application/pdf:{static}/files/menu.pdf"),
            ),
            Reply("What can I help you with?", quick_replies=tuple(TOPICS)),
        ]
    if "hour" in asked or "open" in asked:
        return [
            Reply(
                "We're open 7am–6pm Monday to Saturday, and 8am–2pm on Sundays.",
                quick_replies=("Today's menu", "Talk to a person"),
            )
        ]
    if "menu" in asked:
        return [
            Reply(
                "Here it is — the oat flat white is the favourite this week.",
                attachments=(f"image/svg+xml:{static}/img/menu.svg",),
                quick_replies=("Opening hours", "Talk to a person"),
            )
        ]
    if "person" in asked or "human" in asked or "agent" in asked:
        return [Reply("Hi, I'm Sam from the team. I've read the conversation so far. How can I help?", staff=True)]
    return [Reply(f"Thanks! I've noted “{text[:80]}”. I'll get back to you here in a moment.", staff=True)]


class Simulator(Courier):
    """Courier (see demo/courier.py) plus the bot, which replies after each stored `msg_in`."""

    def __init__(self, dsn: str, seed: Seed, chip_url: str, public_url: str, pause: float = 0.8):
        super().__init__(dsn)
        self.seed = seed
        self.chip_url = chip_url  # where the simulator reaches chip
        self.public_url = public_url  # where the visitor's browser reaches chip (for attachment URLs)
        self.pause = pause  # seconds between replies, so they arrive like typed ones
        self.http = AsyncHTTPClient()
        self.tasks = set()
        self.locks = {}  # chat_id -> Lock: one chat's replies go out in order

    async def handled(self, channel_uuid: str, chat_id: str, events: list):
        # answered after Courier's 200, as RapidPro's flows run after Courier stored the message
        for event in events:
            if event["type"] == "msg_in":
                task = asyncio.create_task(self.answer(channel_uuid, chat_id, event["msg"]["text"]))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def stop(self):
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await super().stop()

    async def answer(self, channel_uuid: str, chat_id: str, text: str):
        async with self.locks.setdefault(chat_id, asyncio.Lock()):
            first = await self.run(self.store.outgoing_count, channel_uuid, chat_id) == 0
            for reply in replies(text, first, self.public_url):
                await asyncio.sleep(self.pause)
                await self.send(channel_uuid, chat_id, reply)

    async def send(self, channel_uuid: str, chat_id: str, reply: Reply):
        user_id = self.seed.user_id if reply.staff else None
        flow_id = None if reply.staff else self.seed.flow_id
        msg_id = await self.run(
            self.store.msg_out,
            channel_uuid,
            chat_id,
            reply.text,
            list(reply.attachments),
            list(reply.quick_replies),
            flow_id,
            user_id,
        )
        msg = {"id": msg_id, "text": reply.text, "origin": "chat" if reply.staff else "flow"}
        if reply.attachments:
            msg["attachments"] = list(reply.attachments)
        if reply.quick_replies:
            msg["quick_replies"] = list(reply.quick_replies)
        if user_id:
            msg["user_id"] = user_id
        body = {"chat_id": chat_id, "secret": self.seed.secret, "msg": msg}
        try:
            await self.http.fetch(
                f"{self.chip_url}/wc/send/{channel_uuid}/",
                method="POST",
                body=json.dumps(body),
                headers={"Content-Type": "application/json"},
                request_timeout=10,
            )
            status = "W"
        except HTTPClientError as e:
            # 4xx is permanent for Courier (failed); 5xx would be retried by Courier, here it is errored
            logger.warning("chip refused msg %s: %s %s", msg_id, e.code, e.response.body if e.response else "")
            status = "F" if e.code < 500 else "E"
        except OSError as e:
            logger.warning("chip unreachable for msg %s: %s", msg_id, e)
            status = "E"
        await self.run(self.store.set_status, msg_id, status)
