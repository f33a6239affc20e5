"""HTTP and WebSocket handlers; each module exports its own `routes`."""

from handlers import send, socket, status, widget
from handlers.base import NotFoundHandler


def routes():
    return status.routes + socket.routes + send.routes + widget.routes


__all__ = ["routes", "NotFoundHandler"]
