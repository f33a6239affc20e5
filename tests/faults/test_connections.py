"""Connections that misbehave: never start a chat, stop answering pings, stop reading."""

import asyncio
import base64
import json
import os
import struct

from services.store import keys
from tests.polling import wait_until


class RawSocket:
    """A WebSocket client written by hand, so it can do what a real widget never should:
    ignore pings and stop reading."""

    @classmethod
    async def open(cls, server, channel_uuid):
        self = cls()
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                f"GET /wc/connect/{channel_uuid}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        status = await self.reader.readuntil(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 101"), status
        return self

    async def send(self, command: dict):
        payload, mask = json.dumps(command).encode(), os.urandom(4)
        header = bytes([0x81]) + (
            bytes([0x80 | len(payload)])
            if len(payload) < 126
            else bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        )
        self.writer.write(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        await self.writer.drain()

    async def read_frame(self):
        head = await self.reader.readexactly(2)
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack(">H", await self.reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", await self.reader.readexactly(8))[0]
        return head[0] & 0x0F, await self.reader.readexactly(length)

    async def closed_by_server(self, timeout: float) -> bool:
        """Read (and ignore, pings included) until the server ends the connection."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    opcode, _ = await self.read_frame()
                    if opcode == 0x8:
                        return True
        except asyncio.IncompleteReadError:
            return True
        except TimeoutError:
            return False

    def close(self):
        self.writer.close()


async def test_socket_without_start_chat_is_closed_after_the_grace(start_chip, channel, connect):
    server = await start_chip(start_timeout=0.3)
    idle = await connect(server, channel["uuid"])
    active = await connect(server, channel["uuid"])
    await active.start()
    assert await asyncio.wait_for(idle.conn.read_message(), 3) is None
    assert idle.conn.close_code == 1008
    await asyncio.sleep(0.3)
    await active.send({"type": "send_msg", "text": "still open"})
    await active.silent(0.2)
    assert active.conn.close_code is None


async def test_dead_connection_is_closed_by_ping_timeout(start_chip, channel):
    server = await start_chip(ping_interval=0.2, ping_timeout=0.2)
    raw = await RawSocket.open(server, channel["uuid"])
    await raw.send({"type": "start_chat"})
    try:
        # it never answers a ping: the server gives up on it (Tornado then waits 5 s for the closing handshake)
        assert await wait_until(lambda: server.services.registry.open_count == 0, timeout=10)
    finally:
        raw.close()


async def test_a_visitor_that_stops_reading_is_cut_off_and_keeps_its_messages(
    store, start_chip, channel, connect, post_msg, tally
):
    server = await start_chip(max_write_buffer=64 * 1024, ping_interval=1, ping_timeout=1)
    raw = await RawSocket.open(server, channel["uuid"])
    await raw.send({"type": "start_chat"})
    _, reply = await raw.read_frame()
    chat_id = json.loads(reply)["chat_id"]
    big = "x" * 60_000
    sent = 0
    try:
        # the visitor reads nothing more: chip stops pushing at the bound, then cuts the socket off
        [session] = server.services.registry.sessions(f"{channel['uuid']}:{chat_id}")
        most = 0
        for _ in range(200):
            sent += 1
            status, _ = await post_msg(
                channel["uuid"], chat_id, {"id": sent, "text": big, "origin": "flow"}, server=server
            )
            assert status == 200
            most = max(most, session.transport.buffered())
        assert most <= 64 * 1024 + 61_000  # never more than the bound plus the frame that crossed it
        assert most > 0  # chip counted the bytes the visitor left unread (ChatSocket.buffered)
        assert await wait_until(lambda: server.services.registry.open_count == 0, timeout=10)
    finally:
        raw.close()
    assert store.zcard(keys.outbox_order(keys.chat_key(channel["uuid"], chat_id))) == sent
    visitor = await connect(server, channel["uuid"])
    await visitor.start(chat_id)
    received = []
    for _ in range(sent):
        msg = (await visitor.expect("chat_out"))["msg_out"]
        received.append(msg["id"])
        await visitor.send({"type": "ack_chat", "msg_id": msg["id"]})
    assert received == list(range(1, sent + 1))
    tally(
        f"visitor stops reading ({sent} x 60 KB, 64 KiB buffer)",
        sent=sent,
        delivered=len(set(received)),
        duplicates=len(received) - len(set(received)),
    )
