"""A socket for unit tests of services (services/delivery/sessions.py's Transport): it keeps the frames
a session was sent and how it was closed, where the WebSocket handler would write them to a widget."""

import json


class Socket:
    def __init__(self):
        self.frames: list[str] = []
        self.closed: tuple | None = None  # (code, reason) once closed

    def send_text(self, text: str) -> bool:
        self.frames.append(text)
        return True

    def buffered(self) -> int:
        return 0  # a socket that takes every frame at once

    def when_drained(self, callback) -> None:
        callback()

    def close(self, code: int = None, reason: str = None) -> None:
        self.closed = (code, reason)

    def events(self, kind: str) -> list[dict]:
        """The frames sent to it of this type, parsed, in order."""
        return [event for event in map(json.loads, self.frames) if event["type"] == kind]
