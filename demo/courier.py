"""Courier's side of protocol.md §3, for the demo's simulator and the tests' double.

`CourierStore` does to RapidPro's tables what Courier's CHP handler does, in whichever generation
the database has (models/schema.py), within RapidPro's constraints: `chat_started` creates the
contact and its webchat URN, `msg_in` inserts an incoming msgs_msg row (with its channel and URN)
and resets the URN's display, `msg_status` updates the outgoing row (stamping sent_on). It also inserts
the outgoing rows that RapidPro would create before Courier sends them, so history shows both sides.

`Courier` serves POST /c/chp/{channel}/receive over real HTTP on loopback; subclasses hear about
the events it handled through `handled()`.
"""

import asyncio
import json
import logging
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import psycopg2
from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler

from demo.embedded import free_port
from demo.seed import insert
from models.schema import Columns

logger = logging.getLogger(__name__)

CHAT_ID = re.compile(r"[a-zA-Z0-9]{24}(:[^\s@]+@[^\s@]+)?")
STATUS_CODES = {"sent": "S", "delivered": "D", "failed": "F"}
# Courier stamps sent_on when a message is wired, sent or delivered (RapidPro's
# no_sent_status_without_sent_on); its first parameter is the new status
SENT_ON = "sent_on = CASE WHEN %s IN ('W', 'S', 'D') THEN COALESCE(sent_on, now()) ELSE sent_on END"


def error_body(error: str) -> dict:
    """Courier's answer to a request it refuses (courier.WriteError): chip reads the error from it."""
    return {"message": "Error", "data": [{"type": "error", "error": error}]}


class CourierStore:
    """Courier's writes, each a short transaction on its own connection (called from worker threads)."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._columns = None

    def _transaction(self, work, *args):
        conn = psycopg2.connect(self.dsn)
        try:
            with conn, conn.cursor() as cur:
                if self._columns is None:
                    self._columns = Columns.read(cur)
                return work(cur, *args)
        finally:
            conn.close()

    def receive(self, channel_uuid: str, body) -> tuple:
        """Handle one request body -> (HTTP status, reply, the events handled)."""
        return self._transaction(self._receive, channel_uuid, body)

    def _receive(self, cur, channel_uuid, body):
        if not isinstance(body, dict):
            return 400, error_body("request JSON doesn't match required schema"), []
        cur.execute(
            "SELECT id, org_id, config FROM channels_channel WHERE uuid = %s AND is_active AND org_id IS NOT NULL",
            (channel_uuid,),
        )
        row = cur.fetchone()
        if row is None:
            return 400, error_body("channel not found"), []
        channel_id, org_id, config = row
        if body.get("secret") != config.get("secret"):
            return 400, error_body("secret incorrect"), []
        chat_id = body.get("chat_id", "")
        if not CHAT_ID.fullmatch(chat_id):
            return 400, error_body("invalid chat id"), []
        events = body.get("events", [])
        for event in events:
            self._event(cur, channel_id, org_id, chat_id, event)
        return 200, {"message": "Events Handled", "data": [{"type": e["type"]} for e in events]}, events

    def _event(self, cur, channel_id, org_id, chat_id, event):
        identity = f"webchat:{chat_id}"
        if event["type"] == "chat_started":
            cur.execute("SELECT id FROM contacts_contacturn WHERE org_id = %s AND identity = %s", (org_id, identity))
            if cur.fetchone() is None:
                now = datetime.now(timezone.utc)
                contact_id = insert(
                    cur,
                    self._columns,
                    "contacts_contact",
                    uuid=str(uuid.uuid4()),
                    org_id=org_id,
                    is_active=True,
                    status="A",
                    ticket_count=0,
                    created_on=now,
                    modified_on=now,
                )
                insert(
                    cur,
                    self._columns,
                    "contacts_contacturn",
                    identity=identity,
                    path=chat_id,
                    scheme="webchat",
                    priority=1000,
                    channel_id=channel_id,
                    contact_id=contact_id,
                    org_id=org_id,
                )
        elif event["type"] == "msg_in":
            urn_id, contact_id = self._urn(cur, org_id, chat_id)
            # Courier rewrites the URN on every incoming message: its display becomes the URN's own
            # (none for webchat), so an email chip kept there is gone (protocol.md §3)
            cur.execute(
                "UPDATE contacts_contacturn SET display = NULL, channel_id = %s WHERE id = %s", (channel_id, urn_id)
            )
            msg_id = self._insert_msg(cur, org_id, channel_id, contact_id, urn_id, event["msg"]["text"], "I", "P")
            # what mailroom does once it has handled it
            cur.execute("UPDATE msgs_msg SET status = 'H', modified_on = now() WHERE id = %s", (msg_id,))
        elif event["type"] == "msg_status":
            status = event["status"]
            code = STATUS_CODES[status["status"]]
            column, ref = ("uuid", status["msg_uuid"]) if "msg_uuid" in status else ("id", status["msg_id"])
            cur.execute(
                f"UPDATE msgs_msg SET status = %s, {SENT_ON}, modified_on = now() WHERE {column} = %s",
                (code, code, ref),
            )

    @staticmethod
    def _urn(cur, org_id, chat_id):
        cur.execute(
            "SELECT id, contact_id FROM contacts_contacturn WHERE org_id = %s AND identity = %s",
            (org_id, f"webchat:{chat_id}"),
        )
        return cur.fetchone()

    def _insert_msg(
        self, cur, org_id, channel_id, contact_id, urn_id, text, direction, status, quick_replies=None, **columns
    ) -> int:
        """A msgs_msg row as Courier (incoming) or mailroom (outgoing) writes it."""
        now = datetime.now(timezone.utc)
        return insert(
            cur,
            self._columns,
            "msgs_msg",
            uuid=str(uuid.uuid4()),
            org_id=org_id,
            channel_id=channel_id,
            contact_id=contact_id,
            contact_urn_id=urn_id,
            text=text,
            msg_type="T",
            direction=direction,
            status=status,
            visibility="V",
            msg_count=1,
            error_count=0,
            high_priority=False,
            is_android=False,
            created_on=now,
            modified_on=now,
            quick_replies=list(quick_replies) if quick_replies else None,
            quickreplies=json.dumps([{"type": "text", "text": q} for q in quick_replies]) if quick_replies else None,
            **columns,
        )

    def msg_out(
        self,
        channel_uuid: str,
        chat_id: str,
        text: str,
        attachments=None,
        quick_replies=None,
        flow_id=None,
        user_id=None,
    ) -> int:
        """Insert an outgoing message as RapidPro queues it for Courier (status Q); its id."""
        return self._transaction(
            self._msg_out, channel_uuid, chat_id, text, attachments, quick_replies, flow_id, user_id
        )

    def _msg_out(self, cur, channel_uuid, chat_id, text, attachments, quick_replies, flow_id, user_id):
        cur.execute("SELECT id, org_id FROM channels_channel WHERE uuid = %s", (channel_uuid,))
        channel_id, org_id = cur.fetchone()
        urn_id, contact_id = self._urn(cur, org_id, chat_id)
        return self._insert_msg(
            cur,
            org_id,
            channel_id,
            contact_id,
            urn_id,
            text,
            "O",
            "Q",
            quick_replies,
            attachments=attachments or None,
            flow_id=flow_id,
            created_by_id=user_id,
        )

    def set_status(self, msg_id: int, status: str):
        """Record what became of a send: W wired (chip queued it), E errored, F failed. Only a still
        queued row changes: the widget's `delivered` may have come back before chip's answer did."""
        self._transaction(
            lambda cur: cur.execute(
                f"UPDATE msgs_msg SET status = %s, {SENT_ON}, modified_on = now() WHERE id = %s AND status = 'Q'",
                (status, status, msg_id),
            )
        )

    def outgoing_count(self, channel_uuid: str, chat_id: str) -> int:
        return self._transaction(self._outgoing_count, channel_uuid, chat_id)

    @staticmethod
    def _outgoing_count(cur, channel_uuid, chat_id):
        cur.execute(
            "SELECT count(*) FROM msgs_msg m JOIN contacts_contacturn u ON u.id = m.contact_urn_id"
            " JOIN channels_channel c ON c.id = u.channel_id"
            " WHERE c.uuid = %s AND u.identity = %s AND m.direction = 'O'",
            (channel_uuid, f"webchat:{chat_id}"),
        )
        return cur.fetchone()[0]


class Receive(RequestHandler):
    def initialize(self, courier):
        self.courier = courier

    async def post(self, channel_uuid):
        status, reply = await self.courier.receive(channel_uuid, self.request.body)
        self.set_status(status)
        self.finish(reply)


class Courier:
    """An HTTP server on a free loopback port that answers chip like Courier does."""

    def __init__(self, dsn: str):
        self.store = CourierStore(dsn)
        # one worker: a chat's events are applied in the order they arrived, as Courier does
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="courier")
        self.server = None
        self.url = None

    async def start(self):
        port = free_port()
        self.server = HTTPServer(Application([(r"/c/chp/([^/]+)/receive", Receive, {"courier": self})]))
        self.server.listen(port, "127.0.0.1")
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self):
        self.server.stop()
        await self.server.close_all_connections()
        self.pool.shutdown(wait=True)

    async def receive(self, channel_uuid: str, raw: bytes) -> tuple:
        """One request -> (status, reply); `handled()` hears about the events once they are stored."""
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, error_body("unable to parse request JSON")
        status, reply, events = await self.run(self.store.receive, channel_uuid, body)
        if events:
            await self.handled(channel_uuid, body["chat_id"], events)
        return status, reply

    async def run(self, work, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, work, *args)

    async def handled(self, channel_uuid: str, chat_id: str, events: list):
        """Called after a request's events were stored, before Courier answers chip."""
