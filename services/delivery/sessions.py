"""Which sockets of this process are bound to which chat.

Invariants:
- The registry maps a chat to the sessions bound to it here, never to none: a chat is held (its
  wake channel subscribed, services/delivery/push.py) from its first session's add() to its last
  one's remove().
- A session's pushed, acked, stalled and synced are its own socket's, changed by push.py only;
  synced is False from bind until a read of the outbox has been pushed to it, and again from a
  read that failed until one succeeds.
"""

import logging
from typing import Protocol

from services.store import keys

logger = logging.getLogger(__name__)


class Transport(Protocol):
    """What a session needs of its socket (the WebSocket handler provides it)."""

    def send_text(self, text: str) -> bool: ...

    def buffered(self) -> int: ...

    def when_drained(self, callback) -> None: ...

    def close(self, code: int = None, reason: str = None) -> None: ...

    def ping(self) -> None: ...

    def closed(self) -> bool: ...


class _Closed:
    """The transport of a session whose socket has closed: what still holds the session (the ping
    queue, a command being served) no longer holds the socket, its buffers and its request."""

    def send_text(self, text: str) -> bool:
        return False

    def buffered(self) -> int:
        return 0

    def when_drained(self, callback) -> None:
        pass

    def close(self, code: int = None, reason: str = None) -> None:
        pass

    def ping(self) -> None:
        pass

    def closed(self) -> bool:
        return True


CLOSED = _Closed()


class Pushed:
    """A message pushed to one socket and not acknowledged yet."""

    __slots__ = ("due", "attempts", "queued")

    def __init__(self, queued: float):
        self.due = 0.0  # monotonic time it is pushed again unless acked before
        self.attempts = 0  # pushes so far
        self.queued = queued  # when it was queued (epoch seconds), for the delivery latency


class Stall:
    """Pushing to a socket waits for it to drain."""

    __slots__ = ("unsent", "since")

    def __init__(self, unsent: int, since: float):
        self.unsent = unsent  # bytes written and not yet taken by the kernel when pushing stopped
        self.since = since  # monotonic time pushing stopped


class Session:
    """One visitor socket: its channel, the chat it is bound to, and what was pushed to it.

    `pushed` maps a message key to its Pushed. `stalled` is a Stall while pushing waits for the
    socket to drain. `synced`: a read of the outbox has been pushed to it since it was
    bound, and none has failed since, so a new message may go to it straight from its wake-up.
    `acked` maps a message key to when it was acked, until no outbox read or wake-up from before
    then can be in flight.
    """

    __slots__ = (
        "channel",
        "chat_id",
        "key",
        "transport",
        "pushed",
        "acked",
        "remote_ip",
        "stalled",
        "synced",
        "heard",
        "pinged",
    )

    def __init__(self, channel, transport: Transport, remote_ip: str = ""):
        self.channel = channel
        self.transport = transport
        self.remote_ip = remote_ip
        self.chat_id = None
        self.key = None
        self.pushed: dict[str, Pushed] = {}
        self.acked: dict[str, float] = {}
        self.stalled: Stall | None = None
        self.synced = False
        self.heard = 0.0  # monotonic time the socket last sent anything (a frame, a pong)
        self.pinged = 0.0  # monotonic time it was last pinged (services/delivery/keepalive.py)

    def bind(self, chat_id: str):
        self.chat_id = chat_id
        self.key = keys.chat_key(self.channel.uuid, chat_id)

    def unbind(self):
        self.chat_id = self.key = None
        self.synced = False

    @property
    def bound(self) -> bool:
        return self.chat_id is not None

    def __repr__(self):
        return f"<Session channel={self.channel.uuid} chat={self.chat_id}>"


class Registry:
    def __init__(self):
        self._open: set[Session] = set()
        self._chats: dict[str, set[Session]] = {}

    def open(self, session: Session):
        self._open.add(session)

    def add(self, session: Session) -> bool:
        """Register a bound session; True if it is the first of its chat in this process."""
        sessions = self._chats.setdefault(session.key, set())
        sessions.add(session)
        return len(sessions) == 1

    def remove(self, session: Session) -> bool:
        """Forget a session; True if it was the last of its chat in this process."""
        self._open.discard(session)
        sessions = self._chats.get(session.key)
        if not sessions or session not in sessions:
            return False
        sessions.discard(session)
        if not sessions:
            del self._chats[session.key]
            return True
        return False

    def sessions(self, key: str) -> list[Session]:
        return list(self._chats.get(key, ()))

    def chats(self) -> list[str]:
        return list(self._chats)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def close_all(self, code: int = 1001, reason: str = "server shutting down"):
        for session in list(self._open):
            session.transport.close(code, reason)
        self._open.clear()
        self._chats.clear()
