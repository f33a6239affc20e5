"""Courier's outgoing messages: POST /wc/send/{channel}/."""

import orjson
from marshmallow import ValidationError
from tornado.web import stream_request_body

from handlers import schemas
from handlers.base import JSONHandler
from services.errors import InvalidCommand, TooLarge

SEND = schemas.Send()


@stream_request_body
class SendHandler(JSONHandler):
    """The body is taken as it streams in (within --max-body-bytes, which the server enforces too),
    so that prepare() can refuse an unknown channel or a body too large before reading any of it."""

    channel = None

    async def prepare(self):
        super().prepare()  # counted in flight, so that a graceful stop answers it
        self.readiness.require()
        self._chunks = []
        length = self.request.headers.get("Content-Length", "")
        # isascii: "²".isdigit() is true, and int() refuses it
        if length.isascii() and length.isdigit() and int(length) > self.config.max_body_bytes:
            raise TooLarge(f"request body is larger than {self.config.max_body_bytes} bytes")
        self.channel = await self.lookups.channel(self.path_args[0])
        if self.channel is None:
            raise InvalidCommand("no such channel")

    def data_received(self, chunk: bytes):
        self._chunks.append(chunk)

    async def post(self, channel_uuid: str):
        """Body {chat_id, secret, msg: {id | uuid, text, origin, attachments?, quick_replies?, user_id?}}
        -> 200 {"status": "queued"} once the message is in Redis; 400 {"error"} for anything Courier
        must not retry; 413 {"error"} for a body over --max-body-bytes or a chat whose outbox holds
        --max-outbox messages; 503 {"error"} when it cannot be stored or chip is not ready (Courier
        retries)."""
        try:
            body = orjson.loads(b"".join(self._chunks))
        except orjson.JSONDecodeError:
            raise InvalidCommand("request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidCommand("request body must be a JSON object")
        try:
            schemas.check_list_lengths(body, self.config.max_list_items)
            data = SEND.load(body)
        except ValidationError as e:
            raise InvalidCommand(schemas.describe(e.messages)) from None
        await self.chats.queue_msg_out(self.channel, data["chat_id"], data["secret"], data["msg"])
        self.write_json({"status": "queued"})


routes = [(r"/wc/send/([^/]+)/?", SendHandler)]
