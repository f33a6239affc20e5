"""The outbox (services/delivery/outbox.py): a message queued twice keeps its first place and frame, and a
widget may ack a uuid in either case (protocol.md §5)."""

from services.store import keys
from tests.polling import wait_until

MSG_UUID = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


async def test_a_message_courier_posts_again_keeps_its_place_and_its_frame(chip_server, channel, connect, post_msg,
                                                                          rows):
    chat_id = "q" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    for msg_id, text in [(1, "first"), (2, "second"), (1, "first, posted again")]:
        status, _ = await post_msg(channel["uuid"], chat_id, {"id": msg_id, "text": text, "origin": "flow"})
        assert status == 200
    visitor = await connect(chip_server, channel["uuid"])
    assert (await visitor.start(chat_id))["type"] == "chat_resumed"
    received = [(await visitor.expect("chat_out"))["msg_out"] for _ in range(2)]
    assert [(out["id"], out["text"]) for out in received] == [(1, "first"), (2, "second")], (
        "Courier posting a queued message again must leave it where and as it was queued")
    await visitor.silent(0.2)


async def test_a_uuid_acked_in_upper_case_leaves_the_outbox_and_is_reported_delivered(store, chip_server, channel,
                                                                                      bound, post_msg, courier):
    visitor = await bound(chip_server, channel)
    await post_msg(channel["uuid"], visitor.chat_id, {"uuid": MSG_UUID, "text": "hi", "origin": "broadcast"})
    assert (await visitor.expect("chat_out"))["msg_out"]["id"] == MSG_UUID
    await visitor.send({"type": "ack_chat", "msg_id": MSG_UUID.upper()})
    key = keys.chat_key(channel["uuid"], visitor.chat_id)
    assert await wait_until(lambda: store.zcard(keys.outbox_order(key)) == 0), (
        "an ack of the uuid in upper case left the message in the outbox")
    await courier.wait_for(lambda: courier.of_type("msg_status", visitor.chat_id))
    assert courier.of_type("msg_status", visitor.chat_id) == [
        {"type": "msg_status", "status": {"msg_uuid": MSG_UUID, "status": "delivered"}}]


async def test_a_chat_whose_last_message_is_acked_no_longer_counts_as_waiting(store, chip_server, channel, bound,
                                                                             post_msg):
    visitor = await bound(chip_server, channel)
    key = keys.chat_key(channel["uuid"], visitor.chat_id)
    await post_msg(channel["uuid"], visitor.chat_id, {"id": 3, "text": "hi", "origin": "flow"})
    await visitor.expect("chat_out")
    assert store.zscore(keys.OUTBOXES, key) is not None  # /metrics: chip_outboxes_waiting counts it
    await visitor.send({"type": "ack_chat", "msg_id": 3})
    assert await wait_until(lambda: store.zcard(keys.outbox_order(key)) == 0)
    assert store.zscore(keys.OUTBOXES, key) is None, "an emptied outbox still counts as a chat with messages waiting"
