"""Faults of whole processes: chip killed, chip stopped, Courier down across a restart."""

import asyncio
import json
import signal

from tornado.websocket import websocket_connect

from services.store import keys
from tests.polling import wait_until


class Widget:
    """A visitor on a real socket that records every chat_out it sees."""

    def __init__(self, conn, chat_id):
        self.conn, self.chat_id, self.seen = conn, chat_id, []

    @classmethod
    async def open(cls, server, channel_uuid, chat_id=None):
        conn = await websocket_connect(f"{server.ws_url}/wc/connect/{channel_uuid}/")
        await conn.write_message(json.dumps({"type": "start_chat", **({"chat_id": chat_id} if chat_id else {})}))
        reply = json.loads(await asyncio.wait_for(conn.read_message(), 10))
        return cls(conn, reply["chat_id"])

    async def read(self, count: int, ack_upto: int = 0, timeout: float = 10):
        """Read `count` chat_out frames, acking ids up to `ack_upto`."""
        for _ in range(count):
            frame = json.loads(await asyncio.wait_for(self.conn.read_message(), timeout))
            msg_id = frame["msg_out"]["id"]
            self.seen.append(msg_id)
            if msg_id <= ack_upto:
                await self.conn.write_message(json.dumps({"type": "ack_chat", "msg_id": msg_id}))

    def close(self):
        self.conn.close()


async def post_all(http, server, channel_uuid, chat_id, ids):
    for i in ids:
        body = {"chat_id": chat_id, "secret": "sesame", "msg": {"id": i, "text": f"m{i}", "origin": "flow"}}
        status, _ = await http(f"{server.url}/wc/send/{channel_uuid}/", method="POST", body=json.dumps(body))
        assert status == 200


async def test_sigkill_loses_nothing_visitors_resume_elsewhere_in_order(store, chip_process, http, channel, tally):
    one = await chip_process("--instance-id", "one").ready(http)
    two = await chip_process("--instance-id", "two").ready(http)
    widgets = [await Widget.open(one, channel["uuid"]) for _ in range(5)]
    try:
        for widget in widgets:
            await post_all(http, two, channel["uuid"], widget.chat_id, range(1, 21))
            await widget.read(20, ack_upto=10)  # acks the first half, then the process dies
        client = store
        await wait_until(  # the acks have reached Redis
            lambda: all(
                client.zcard(keys.outbox_order(keys.chat_key(channel["uuid"], w.chat_id))) == 10 for w in widgets
            )
        )
        one.proc.kill()
        one.proc.wait(10)
        resumed = [await Widget.open(two, channel["uuid"], w.chat_id) for w in widgets]
        lost = duplicates = 0
        for widget in resumed:
            await widget.read(10)
            assert widget.seen == list(range(11, 21))  # every unacked message, in order
        for before, after in zip(widgets, resumed):
            acked = set(before.seen[:10])
            lost += len(set(range(1, 21)) - acked - set(after.seen))
            duplicates += len(acked & set(after.seen))  # unacked ones coming again is the contract
        tally(
            "chip SIGKILLed holding unacked messages (5 chats)", sent=100, delivered=100 - lost, duplicates=duplicates
        )
        assert lost == 0
        for widget in resumed:
            widget.close()
    finally:
        for widget in widgets:
            widget.close()


async def test_courier_down_then_chip_killed_visitor_messages_still_arrive(
    store, chip_process, http, channel, courier, tally
):
    one = await chip_process("--instance-id", "one").ready(http)
    widget = await Widget.open(one, channel["uuid"])
    courier.fail_with = 503
    for i in range(20):
        await widget.conn.write_message(json.dumps({"type": "send_msg", "text": f"v{i}"}))
    client = store
    key = keys.courier_events(keys.chat_key(channel["uuid"], widget.chat_id))
    await courier.wait_for(lambda: client.llen(key) == 20)  # all accepted, none taken by Courier
    one.proc.kill()
    one.proc.wait(10)
    widget.close()
    courier.fail_with = 0
    await chip_process("--instance-id", "two").ready(http)  # its due loop picks the chat up
    await courier.wait_for(lambda: len(courier.of_type("msg_in", widget.chat_id)) >= 20, timeout=40)
    texts = [e["msg"]["text"] for e in courier.of_type("msg_in", widget.chat_id)]
    tally(
        "Courier 503, then chip SIGKILLed (visitor messages)",
        sent=20,
        delivered=len(set(texts)),
        duplicates=len(texts) - len(set(texts)),
    )
    assert texts == [f"v{i}" for i in range(20)]


async def test_sigterm_finishes_courier_calls_in_flight(chip_process, http, channel, courier, tally):
    process = await chip_process().ready(http)
    widget = await Widget.open(process, channel["uuid"])
    courier.delay = 0.5  # each message is a request of its own: five of them fit in chip's 5 s shutdown grace
    for i in range(5):
        await widget.conn.write_message(json.dumps({"type": "send_msg", "text": f"bye{i}"}))
    await courier.wait_for(lambda: any(r["events"][0]["type"] == "msg_in" for r in courier.requests))
    process.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(widget.conn.read_message(), 10) is None and widget.conn.close_code == 1001
    assert await asyncio.get_running_loop().run_in_executor(None, process.proc.wait, 20) == 0
    texts = [e["msg"]["text"] for e in courier.of_type("msg_in", widget.chat_id)]
    tally(
        "SIGTERM during a slow Courier call", sent=5, delivered=len(set(texts)), duplicates=len(texts) - len(set(texts))
    )
    assert texts == [f"bye{i}" for i in range(5)]  # the calls in flight completed before exit
    widget.close()
