"""A visitor's chat widget: the WebSocket at /wc/connect/{channel}/."""

import logging

import orjson
from marshmallow import ValidationError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from handlers import schemas
from handlers.base import ServicesMixin, refusal
from services import events
from services.errors import InvalidCommand
from services.limits import CommandBucket
from services.registry import Session

logger = logging.getLogger(__name__)

# command type -> (its schema, the Chats coroutine that carries it out)
COMMANDS = {
    "start_chat": (schemas.StartChat(), "start_chat"),
    "send_msg": (schemas.SendMsg(), "send_msg"),
    "ack_chat": (schemas.AckChat(), "ack_chat"),
    "get_history": (schemas.GetHistory(), "get_history"),
    "set_email": (schemas.SetEmail(), "set_email"),
}


def _retrieve(future):
    # a frame written to a socket that closed meanwhile fails later; on_close already cleaned up
    if not future.cancelled():
        future.exception()


class ChatSocket(ServicesMixin, WebSocketHandler):
    session: Session = None
    bucket: CommandBucket = None

    async def get(self, channel_uuid: str):
        headers = self.request.headers
        if headers.get("Upgrade", "").lower() != "websocket":
            raise InvalidCommand("this endpoint takes WebSocket connections only")
        self.limits.check_origin(headers.get("Origin"))
        channel = await self.lookups.channel(channel_uuid)
        if channel is None:
            raise InvalidCommand("no such channel")
        client_ip = self.limits.client_ip(self.request.remote_ip, headers.get("X-Forwarded-For"),
                                          headers.get("X-Real-IP"))
        self.session = Session(channel, self, client_ip)
        self.bucket = self.limits.command_bucket()
        # the upgraded socket is served inside super().get(), which returns once it has closed
        with self.limits.socket(client_ip):
            await super().get(channel_uuid)

    def check_origin(self, origin: str) -> bool:
        # get() has already applied --allowed-origins, so that a refusal is a JSON 403 like every other
        return True

    def open(self, channel_uuid: str):
        self.registry.open(self.session)
        logger.debug("socket opened channel=%s ip=%s", channel_uuid, self.session.remote_ip)

    async def on_message(self, message):
        try:
            self.bucket.take()
            reply = await self._dispatch(message)
        except Exception as e:  # noqa: BLE001 - an exception escaping on_message kills the socket
            error = refusal(e)
            reply = events.error(error.code, error.message)
        if reply is not None:
            self.send_text(orjson.dumps(reply).decode())

    async def _dispatch(self, message):
        try:
            command = orjson.loads(message)
        except orjson.JSONDecodeError:
            raise InvalidCommand("frame is not valid JSON") from None
        if not isinstance(command, dict):
            raise InvalidCommand("a command is a JSON object with a type")
        kind = command.get("type")
        if not isinstance(kind, str) or kind not in COMMANDS:  # a list or an object is no type, and unhashable
            raise InvalidCommand(f"unknown command type: {str(kind)[:40]}" if kind else "type: field is required")
        schema, action = COMMANDS[kind]
        try:
            args = schema.load(command)
        except ValidationError as e:
            raise InvalidCommand(schemas.describe(e.messages)) from None
        return await getattr(self.chats, action)(self.session, **args)

    def send_text(self, text: str) -> bool:
        """Write one frame; False if the socket is gone (it is then dropped from the registry)."""
        if self.ws_connection is None or self.ws_connection.is_closing():
            return False
        try:
            self.write_message(text).add_done_callback(_retrieve)
        except WebSocketClosedError:
            self.delivery.unbind(self.session)
            return False
        return True

    def on_close(self):
        if self.session is not None:
            self.delivery.unbind(self.session)
            logger.debug("socket closed channel=%s chat=%s code=%s", self.session.channel.uuid,
                         self.session.chat_id, self.close_code)


routes = [(r"/wc/connect/([^/]+)/?", ChatSocket)]
