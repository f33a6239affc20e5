"""A visitor's chat widget: the WebSocket at /wc/connect/{channel}/."""

import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable

import orjson
from marshmallow import Schema, ValidationError
from tornado.ioloop import IOLoop
from tornado.iostream import StreamBufferFullError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from handlers import schemas
from handlers.base import ServicesMixin, refusal
from services import events
from services.chats import Chats
from services.delivery.sessions import CLOSED, Session
from services.errors import InvalidCommand
from services.limits import CommandBucket

logger = logging.getLogger(__name__)


def counted(socket: "ChatSocket", fields: dict) -> bool:
    """The usual rule: every frame of the command is counted by --command-rate."""
    return False


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    """A widget's command: the schema its fields are validated with, the Chats coroutine that serves
    it (called with the Chats service, the socket's Session and those fields), and which of its
    frames are not counted by --command-rate (`free(socket, fields)`)."""

    schema: Schema
    serve: Callable[..., Awaitable[dict | None]]
    free: Callable[["ChatSocket", dict], bool] = counted


def _acks_a_push(socket: "ChatSocket", fields: dict) -> bool:
    # chip bounds the number of messages it pushes itself, and a widget catching up on a backlog
    # must not be refused acking them
    return socket.delivery.awaits_ack(socket.session, fields["msg_id"])


# every command a widget may send, by its type; adding one is a row here, a schema and a Chats method
COMMANDS = {
    "start_chat": Command(schemas.StartChat(), Chats.start_chat),
    "send_msg": Command(schemas.SendMsg(), Chats.send_msg),
    "ack_chat": Command(schemas.AckChat(), Chats.ack_chat, free=_acks_a_push),
    "get_history": Command(schemas.GetHistory(), Chats.get_history),
    "set_email": Command(schemas.SetEmail(), Chats.set_email),
}


class ChatSocket(ServicesMixin, WebSocketHandler):
    session: Session = None
    _start_timer = None
    _last_write = None
    _unsent = 0  # bytes of frames written whose writes have not reached the kernel yet
    bucket: CommandBucket = None

    async def get(self, channel_uuid: str):
        headers = self.request.headers
        # refuse anything short of a complete upgrade here, so the answer is JSON like every other
        if (
            headers.get("Upgrade", "").lower() != "websocket"
            or "upgrade" not in headers.get("Connection", "").lower()
            or not headers.get("Sec-WebSocket-Key")
            or not headers.get("Sec-WebSocket-Version")
        ):
            raise InvalidCommand("this endpoint takes WebSocket connections only")
        self.readiness.require()
        self.limits.check_origin(headers.get("Origin"))
        channel = await self.lookups.channel(channel_uuid)
        if channel is None:
            raise InvalidCommand("no such channel")
        client_ip = self.limits.client_ip(
            self.request.remote_ip, headers.get("X-Forwarded-For"), headers.get("X-Real-IP")
        )
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
        # delivery keeps under --max-write-buffer by itself; this bounds whatever else is written
        self.ws_connection.stream.max_write_buffer_size = 2 * self.config.max_write_buffer + 64 * 1024
        self._start_timer = IOLoop.current().call_later(self.config.start_timeout, self._close_unstarted)
        self.keepalive.watch(self.session)
        logger.debug("socket opened channel=%s ip=%s", channel_uuid, self.session.remote_ip)

    def on_pong(self, data: bytes):
        self.session.heard = time.monotonic()

    def ping(self, data: bytes = b""):
        """Ping the widget (services/delivery/keepalive.py); a socket closing meanwhile is no error."""
        if not self.closed():
            super().ping(data)

    def closed(self) -> bool:
        return self.ws_connection is None or self.ws_connection.is_closing()

    async def on_message(self, message):
        self.session.heard = time.monotonic()
        try:
            reply = await self._dispatch(message)
        except Exception as e:  # noqa: BLE001 - an exception escaping on_message kills the socket
            error = refusal(e)
            reply = events.error(error.code, error.message)
        if self._start_timer is not None and self.session.bound:
            # a bound socket is idle for hours: its timer, its handler and what they hold go now
            IOLoop.current().remove_timeout(self._start_timer)
            self._start_timer = None
        if reply is not None:
            self.send_text(orjson.dumps(reply).decode())

    async def _dispatch(self, message):
        try:
            command, fields = self._decode(message)
        except InvalidCommand:
            self.bucket.take()  # garbage is rate limited like any command
            raise
        if not command.free(self, fields):
            self.bucket.take()
        return await command.serve(self.chats, self.session, **fields)

    def _decode(self, message) -> tuple[Command, dict]:
        """The command and its validated fields; InvalidCommand when it is not a command."""
        try:
            command = orjson.loads(message)
        except orjson.JSONDecodeError:
            raise InvalidCommand("frame is not valid JSON") from None
        if not isinstance(command, dict):
            raise InvalidCommand("a command is a JSON object with a type")
        kind = command.get("type")
        if not isinstance(kind, str) or kind not in COMMANDS:  # a list or an object is no type, and unhashable
            raise InvalidCommand(f"unknown command type: {str(kind)[:40]}" if kind else "type: field is required")
        try:
            return COMMANDS[kind], COMMANDS[kind].schema.load(command)
        except ValidationError as e:
            raise InvalidCommand(schemas.describe(e.messages)) from None

    def send_text(self, text: str) -> bool:
        """Write one frame; False if the socket is gone (it is then dropped from the registry)."""
        if self.ws_connection is None or self.ws_connection.is_closing():
            return False
        frame = text.encode()  # once: Tornado sends bytes as they are, as a text frame
        try:
            self._last_write = self.write_message(frame)
        except WebSocketClosedError:
            self.delivery.unbind(self.session)
            return False
        except StreamBufferFullError:
            # not even a close frame would get through: drop the connection; the outbox keeps the messages
            logger.info(
                "closing a socket that does not read channel=%s chat=%s",
                self.session.channel.uuid,
                self.session.chat_id,
            )
            self.delivery.unbind(self.session)
            self.ws_connection.stream.close()
            return False
        self._unsent += len(frame)
        self._last_write.add_done_callback(functools.partial(self._written, len(frame)))
        return True

    def _written(self, size: int, future):
        self._unsent -= size
        if self._last_write is future:
            self._last_write = None  # nothing left to wait for: an idle socket holds no spent future
        # a frame written to a socket that closed meanwhile fails later; on_close already cleaned up
        if not future.cancelled():
            future.exception()

    def buffered(self) -> int:
        """Bytes of the frames written to this socket and not yet taken by the kernel (counted here:
        IOStream keeps no public count of its unsent bytes)."""
        stream = self.ws_connection.stream if self.ws_connection else None
        if stream is None or stream.closed():
            return 0
        return self._unsent

    def when_drained(self, callback):
        """Call back once everything written so far has gone to the kernel (or the socket closed)."""
        if self._last_write is None or self._last_write.done():
            IOLoop.current().add_callback(callback)
        else:
            self._last_write.add_done_callback(lambda _: callback())

    def _close_unstarted(self):
        if not self.session.bound:
            self.close(1008, "start_chat was not sent in time")

    def on_close(self):
        if self._start_timer is not None:
            IOLoop.current().remove_timeout(self._start_timer)
        if self.session is not None:
            self.delivery.unbind(self.session)
            self.session.transport = CLOSED
            logger.debug(
                "socket closed channel=%s chat=%s code=%s",
                self.session.channel.uuid,
                self.session.chat_id,
                self.close_code,
            )


routes = [(r"/wc/connect/([^/]+)/?", ChatSocket)]
