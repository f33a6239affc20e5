"""chip's HTTP server: Tornado's HTTPServer with chip's timeouts and body limit, a count of each
client's open connections, and listening sockets that survive running out of file descriptors.

chip.py and the tests build the server with make_server, so both run the same options.
"""

import errno
import http.client
import logging
import os
import socket
import time

import orjson
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream
from tornado.web import Application

from services.config import Config
from services.errors import ChipError, RateLimited
from services.limits import Limits

logger = logging.getLogger(__name__)

LOG_INTERVAL = 10.0  # seconds between two lines about the same flood (refused connections, EMFILE)


def make_server(app: Application, config: Config) -> "ChipHTTPServer":
    """The HTTPServer for chip's Application (its `limits` setting counts the connections).

    Tornado times a request's headers with one clock from connect, or from the previous answer on
    a kept-alive connection, so --header-timeout is also the idle limit between requests."""
    return ChipHTTPServer(
        app,
        limits=app.settings["limits"],
        idle_connection_timeout=config.header_timeout,
        body_timeout=config.body_timeout,
        max_body_size=config.max_body_bytes,
    )


class Throttled:
    """A log line for something that may happen thousands of times a second: written at most once
    per interval, with how many times it happened since the last line."""

    def __init__(self, message: str, level: int = logging.WARNING, interval: float = LOG_INTERVAL):
        self.message = message
        self.level = level
        self.interval = interval
        self._count = 0
        self._logged_at = float("-inf")

    def __call__(self, detail: str):
        self._count += 1
        now = time.monotonic()
        if now - self._logged_at >= self.interval:
            logger.log(self.level, "%s (%d time(s) since the last such line): %s", self.message, self._count, detail)
            self._count = 0
            self._logged_at = now


class ChipHTTPServer(HTTPServer):
    def initialize(self, request_callback, *, limits: Limits, **kwargs):
        super().initialize(request_callback, **kwargs)
        self.limits = limits
        self._clients: dict[IOStream, str] = {}  # a counted connection's stream -> its client's key
        self._refused = Throttled("connections refused", logging.INFO)
        self._exhausted = Throttled("out of file descriptors: new connections are closed at once")

    def add_sockets(self, sockets):
        super().add_sockets([Listener(sock, self._exhausted) for sock in sockets])

    def handle_stream(self, stream: IOStream, address):
        """A new connection: counted against its client's --max-connections-per-ip until it closes
        or becomes a WebSocket (which the socket count takes over), else answered 429 and closed."""
        peer = address[0] if isinstance(address, tuple) else str(address)
        try:
            key = self.limits.open_connection(peer)
        except RateLimited as e:
            self._refused(f"ip={peer}: {e.message}")
            _answer_and_close(stream, e)
            return
        if key is not None:
            self._clients[stream] = key
        super().handle_stream(stream, address)

    def on_close(self, server_conn):
        # Tornado calls this when the connection closes, and when a WebSocket takes it over
        self.limits.close_connection(self._clients.pop(server_conn.stream, None))
        super().on_close(server_conn)


def _answer_and_close(stream: IOStream, error: ChipError):
    """Answer before any request was read (HTTP allows it), then close."""
    body = orjson.dumps({"error": error.message})
    head = (
        f"HTTP/1.1 {error.status} {http.client.responses[error.status]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    stream.write(head + body).add_done_callback(lambda written: written.exception() or stream.close())


class Listener(socket.socket):
    """A listening socket whose accept() survives the process running out of file descriptors.

    Tornado's accept loop logs a traceback for every failed accept() and, since the pending
    connection stays in the backlog, is called again at once: a flood of tracebacks at full CPU while
    nobody is served. Here a spare descriptor is kept; when the limit is hit, it is given up to
    accept the oldest pending connection and close it at once (a proxy then tries another process),
    the event is logged at most once per interval, and the loop is told there is nothing to accept
    now, so it serves the connected clients before it comes back."""

    def __init__(self, sock: socket.socket, exhausted: Throttled):
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.exhausted = exhausted
        self.spare = _spare()

    def accept(self):
        try:
            return super().accept()
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            self.exhausted(e.strerror)
            self._shed()
            raise BlockingIOError(errno.EAGAIN, "no file descriptor to accept with") from None

    def _shed(self):
        if self.spare is not None:
            os.close(self.spare)
            try:
                super().accept()[0].close()
            except OSError:
                pass
        self.spare = _spare()

    def close(self):
        if self.spare is not None:
            os.close(self.spare)
            self.spare = None
        super().close()


def _spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None
