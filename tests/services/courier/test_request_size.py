"""A request to Courier stays within what Courier reads of a body, its envelope (chat_id, secret)
included: the bytes chip sends are measured by the double as they arrive."""

import json

from services.backoff import Backoff
from services.store import keys
from tests.courier_double import MAX_BODY
from tests.polling import wait_until

FAST = {"courier": Backoff(0.05, 0.2), "tick": 0.05}  # retries within a test's patience


def size(value) -> int:
    """Bytes of `value` as compact JSON, as chip writes it."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


async def test_a_batch_that_fits_only_without_its_envelope_is_split(
    bound, start_chip, channel, courier, post_msg, store
):
    server = await start_chip(max_text_length=2_000_000, max_message_bytes=4 * 1024 * 1024, retry=FAST)
    visitor = await bound(server, channel)
    for i in (1, 2, 3):
        await post_msg(channel["uuid"], visitor.chat_id, {"id": i, "text": f"m{i}", "origin": "flow"}, server=server)
        await visitor.expect("chat_out")
    courier.fail_with = 503  # the three statuses and the message wait in one list, to be posted as one batch
    for i in (1, 2, 3):
        await visitor.send({"type": "ack_chat", "msg_id": i})
    statuses = sum(size({"type": "msg_status", "status": {"msg_id": i, "status": "delivered"}}) for i in (1, 2, 3))
    envelope = size({"chat_id": visitor.chat_id, "secret": "sesame", "events": []})
    # the four events and their commas come to MAX_BODY less half the envelope: alone they fit, in a request not
    text = "x" * (MAX_BODY - envelope // 2 - statuses - 3 - size({"type": "msg_in", "msg": {"text": ""}}))
    await visitor.send({"type": "send_msg", "text": text})
    events = keys.courier_events(keys.chat_key(channel["uuid"], visitor.chat_id))
    assert await wait_until(lambda: store.llen(events) == 4)
    courier.fail_with = 0

    arrived = await wait_until(lambda: courier.of_type("msg_in", visitor.chat_id), timeout=10)
    assert max(courier.raw_sizes) <= MAX_BODY, f"chip sent {max(courier.raw_sizes)} bytes, Courier reads {MAX_BODY}"
    assert arrived, "the visitor's message never reached Courier"
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == [text]
    assert [e["status"]["msg_id"] for e in courier.of_type("msg_status", visitor.chat_id)] == [1, 2, 3]
