"""Courier's outgoing messages: POST /wc/send/{channel}/."""

import orjson
from marshmallow import ValidationError

from handlers import schemas
from handlers.base import JSONHandler
from services.errors import InvalidCommand

SEND = schemas.Send()


class SendHandler(JSONHandler):
    async def post(self, channel_uuid: str):
        """Body {chat_id, secret, msg: {id | uuid, text, origin, attachments?, quick_replies?, user_id?}}
        -> 200 {"status": "queued"} once the message is in Redis; 400 {"error"} for anything Courier
        must not retry; 503 {"error"} when it cannot be stored or chip is not ready (Courier retries)."""
        self.readiness.require()
        channel = await self.lookups.channel(channel_uuid)
        if channel is None:
            raise InvalidCommand("no such channel")
        try:
            body = orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            raise InvalidCommand("request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidCommand("request body must be a JSON object")
        try:
            data = SEND.load(body)
        except ValidationError as e:
            raise InvalidCommand(schemas.describe(e.messages)) from None
        await self.chats.queue_msg_out(channel, data["chat_id"], data["secret"], data["msg"])
        self.write_json({"status": "queued"})


routes = [(r"/wc/send/([^/]+)/?", SendHandler)]
