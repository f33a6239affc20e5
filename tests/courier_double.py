"""A Courier double: a real HTTP server on loopback that does what Courier's CHP handler does.

It checks the secret and chat ID, creates the contact and its webchat URN on `chat_started`,
inserts an incoming msgs_msg row on `msg_in`, and records statuses (updating the message row
when it exists). `fail_with` makes it answer every request with that status, to fake an outage.
"""

import asyncio
import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg2
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application, RequestHandler

CHAT_ID = re.compile(r"^[a-zA-Z0-9]{24}(:[^\s@]+@[^\s@]+)?$")


class Receive(RequestHandler):
    def initialize(self, double):
        self.double = double

    async def post(self, channel_uuid):
        double = self.double
        double.requests.append(json.loads(self.request.body or b"null"))
        if double.delay:
            await asyncio.sleep(double.delay)
        if double.fail_with:
            self.set_status(double.fail_with)
            return self.finish({"error": "courier is having a bad day"})
        body = json.loads(self.request.body)
        loop = asyncio.get_running_loop()
        status, reply = await loop.run_in_executor(double.pool, double.handle, channel_uuid, body)
        self.set_status(status)
        self.finish(reply)


class CourierDouble:
    def __init__(self, dsn: str):
        self.dsn = dsn
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.requests: list = []   # every body received
        self.events: list = []     # (chat_id, event) for every event handled
        self.fail_with = 0
        self.delay = 0.0           # seconds to wait before answering, like a busy Courier
        self.server = None
        self.url = None

    async def start(self):
        sock, port = bind_unused_port()
        self.server = HTTPServer(Application([(r"/c/chp/([^/]+)/receive", Receive, {"double": self})]))
        self.server.add_sockets([sock])
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self):
        self.server.stop()
        await self.server.close_all_connections()
        self.pool.shutdown(wait=True)

    def of_type(self, kind: str, chat_id: str = None) -> list:
        return [e for c, e in self.events if e["type"] == kind and (chat_id is None or c == chat_id)]

    async def wait_for(self, predicate, timeout: float = 5.0):
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"courier double: condition not met in {timeout}s; events={self.events}")
            await asyncio.sleep(0.01)

    # what Courier does, on a worker thread

    def handle(self, channel_uuid, body):
        conn = psycopg2.connect(self.dsn)
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT id, org_id, config FROM channels_channel WHERE uuid = %s AND is_active",
                            (channel_uuid,))
                row = cur.fetchone()
                if row is None:
                    return 400, {"error": "channel not found"}
                channel_id, org_id, config = row
                if body.get("secret") != config.get("secret"):
                    return 400, {"error": "secret incorrect"}
                chat_id = body.get("chat_id", "")
                if not CHAT_ID.match(chat_id):
                    return 400, {"error": "invalid chat id"}
                for event in body.get("events", []):
                    self._event(cur, channel_id, org_id, chat_id, event)
            # recorded only once committed, so a test that saw an event also sees its rows
            self.events.extend((chat_id, event) for event in body.get("events", []))
            return 200, {"message": "Events Handled", "data": [{"type": e["type"]} for e in body.get("events", [])]}
        finally:
            conn.close()

    def _event(self, cur, channel_id, org_id, chat_id, event):
        identity = f"webchat:{chat_id}"
        if event["type"] == "chat_started":
            cur.execute("SELECT id FROM contacts_contacturn WHERE org_id = %s AND identity = %s", (org_id, identity))
            if cur.fetchone() is None:
                cur.execute(
                    "INSERT INTO contacts_contact (uuid, org_id, is_active, status, ticket_count, created_on,"
                    " modified_on) VALUES (%s, %s, true, 'A', 0, now(), now()) RETURNING id",
                    (str(uuid.uuid4()), org_id))
                contact_id = cur.fetchone()[0]
                cur.execute(
                    "INSERT INTO contacts_contacturn (identity, path, scheme, priority, channel_id, contact_id,"
                    " org_id) VALUES (%s, %s, 'webchat', 1000, %s, %s, %s)",
                    (identity, chat_id, channel_id, contact_id, org_id))
        elif event["type"] == "msg_in":
            cur.execute("SELECT id, contact_id FROM contacts_contacturn WHERE org_id = %s AND identity = %s",
                        (org_id, identity))
            urn_id, contact_id = cur.fetchone()
            cur.execute(
                "INSERT INTO msgs_msg (uuid, org_id, channel_id, contact_id, contact_urn_id, text, created_on,"
                " modified_on, msg_type, direction, status, visibility, msg_count, error_count)"
                " VALUES (%s, %s, %s, %s, %s, %s, now(), now(), 'T', 'I', 'H', 'V', 1, 0)",
                (str(uuid.uuid4()), org_id, channel_id, contact_id, urn_id, event["msg"]["text"]))
        elif event["type"] == "msg_status":
            status = event["status"]
            code = {"sent": "S", "delivered": "D", "failed": "F"}[status["status"]]
            if "msg_uuid" in status:
                cur.execute("UPDATE msgs_msg SET status = %s WHERE uuid = %s::uuid", (code, status["msg_uuid"]))
            else:
                cur.execute("UPDATE msgs_msg SET status = %s WHERE id = %s", (code, status["msg_id"]))
