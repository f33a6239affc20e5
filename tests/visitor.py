"""A chat widget for tests: a real WebSocket client speaking JSON frames."""

import asyncio
import json


class Visitor:
    """A chat widget: a real WebSocket client speaking JSON frames."""

    def __init__(self, conn):
        self.conn = conn

    async def send(self, command):
        await self.conn.write_message(command if isinstance(command, str) else json.dumps(command))

    async def recv(self, timeout: float = 5.0) -> dict:
        frame = await asyncio.wait_for(self.conn.read_message(), timeout)
        assert frame is not None, f"socket closed (code {self.conn.close_code})"
        return json.loads(frame)

    async def expect(self, kind: str, timeout: float = 5.0) -> dict:
        event = await self.recv(timeout)
        assert event["type"] == kind, event
        return event

    async def silent(self, seconds: float = 0.3):
        """Assert that nothing arrives for a while."""
        try:
            frame = await asyncio.wait_for(self.conn.read_message(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {frame}")

    async def start(self, chat_id=None) -> dict:
        await self.send({"type": "start_chat", **({"chat_id": chat_id} if chat_id else {})})
        return await self.recv()

    def close(self):
        self.conn.close()
