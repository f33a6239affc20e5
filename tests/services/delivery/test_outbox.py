"""The outbox (services/delivery/outbox.py): messages wait in the order they came, a message queued twice
keeps its first place and frame, an acked one leaves, a full outbox refuses more, and a widget may ack a
uuid in either case (protocol.md §5). First the Outbox itself over Redis, then through a running chip."""

import time
from datetime import datetime, timezone

import orjson
import pytest

from services import events
from services.delivery.outbox import EMAIL_TTL, Outbox
from services.errors import TooLarge
from services.store import keys
from services.store.client import connect
from services.store.pubsub import WakeChannels
from services.store.scripts import Scripts
from tests.polling import wait_until

MSG_UUID = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
KEY = keys.chat_key("8eb23e93-5ecb-45ba-b726-3b064e0c56ab", "u" * 24)


@pytest.fixture
async def outbox(redis_url):
    """An Outbox over the tests' Redis, built as chip.build builds it."""
    redis = connect(redis_url)
    scripts = Scripts(redis)
    wakes = WakeChannels(redis)
    await wakes.start()  # which pub/sub the server has
    yield Outbox(redis, scripts, wakes)
    await scripts.stop()
    await wakes.aclose()
    await redis.aclose()


def frame(msg_id, text: str) -> bytes:
    """The chat_out frame chip queues for a message from Courier."""
    return orjson.dumps(events.chat_out(events.msg_out(msg_id, text, "flow", datetime.now(timezone.utc))))


async def queued(outbox, size: int = 100) -> list[tuple[str, str]]:
    """The outbox's first `size` messages in order, as (message key, text)."""
    return [(msg_key, orjson.loads(raw)["msg_out"]["text"]) for msg_key, raw in await outbox.window(KEY, size)]


async def test_an_outbox_gives_its_messages_in_the_order_they_came(outbox):
    arrivals = [("10", "ten"), ("9", "nine"), ("b", "bee"), ("2", "two"), ("a", "ay")]  # no sort order matches
    for msg_key, text in arrivals:
        assert await outbox.queue(KEY, msg_key, frame(msg_key, text), 100)
    assert await queued(outbox) == arrivals
    assert await queued(outbox, 2) == arrivals[:2], "a window must be the first messages, in order"
    assert len(await outbox.window(KEY, 100)) == 5
    assert await outbox.window(keys.chat_key("8eb23e93-5ecb-45ba-b726-3b064e0c56ab", "v" * 24), 100) == []


async def test_a_message_queued_again_keeps_its_first_place_and_frame(outbox):
    first, second = frame(1, "first"), frame(2, "second")
    assert await outbox.queue(KEY, "1", first, 100)
    assert await outbox.queue(KEY, "2", second, 100)
    assert not await outbox.queue(KEY, "1", frame(1, "first, posted again"), 100), "a repeat was counted as new"
    assert await outbox.window(KEY, 100) == [("1", first.decode()), ("2", second.decode())]


async def test_a_full_outbox_refuses_a_new_message_but_not_a_repeat(outbox):
    for msg_id in (1, 2):
        await outbox.queue(KEY, str(msg_id), frame(msg_id, f"m{msg_id}"), 2)
    with pytest.raises(TooLarge):
        await outbox.queue(KEY, "3", frame(3, "m3"), 2)
    assert not await outbox.queue(KEY, "1", frame(1, "m1"), 2), "Courier posting a queued message again was refused"
    assert await queued(outbox) == [("1", "m1"), ("2", "m2")]


async def test_an_acked_message_leaves_and_the_others_keep_their_order(services, store):
    for msg_id in (1, 2, 3):
        await services.outbox.queue(KEY, str(msg_id), frame(msg_id, f"m{msg_id}"), 100)
    # an ack is CourierQueue.report: the message leaves its outbox as its status is queued for Courier
    assert await services.courier_queue.report(KEY, "2", "delivered", post=False)
    assert [msg_key for msg_key, _ in await services.outbox.window(KEY, 100)] == ["1", "3"]
    assert not await services.courier_queue.report(KEY, "2", "delivered", post=False), "a message was acked twice"
    assert len(await services.outbox.window(KEY, 100)) == 2
    assert [orjson.loads(raw)["e"] for raw in store.lrange(keys.courier_events(KEY), 0, -1)] == [
        {"type": "msg_status", "status": {"msg_id": 2, "status": "delivered"}}
    ]


async def test_queueing_wakes_whoever_holds_the_chat_with_the_message_itself(outbox, store):
    pubsub = store.pubsub(ignore_subscribe_messages=True)
    (pubsub.ssubscribe if outbox.wakes.sharded else pubsub.subscribe)(keys.wake_channel(KEY))
    hello = frame(7, "hello")
    try:
        await outbox.queue(KEY, "7", hello, 100)
        await outbox.queue(KEY, "7", hello, 100)  # a repeat wakes no one: it was pushed already
        read = pubsub.get_sharded_message if outbox.wakes.sharded else pubsub.get_message
        messages = [read(timeout=0.1) for _ in range(10)]
    finally:
        pubsub.close()
    assert [m["data"] for m in messages if m] == [b"7\n" + hello]


async def test_a_chat_waits_for_expiry_from_when_its_oldest_message_was_queued(outbox, store):
    before = time.time()
    await outbox.queue(KEY, "1", frame(1, "oldest"), 100)
    queued_at = store.zscore(keys.outboxes_of(KEY), KEY)
    assert before <= queued_at <= time.time()
    await outbox.queue(KEY, "2", frame(2, "newer"), 100)
    assert store.zscore(keys.outboxes_of(KEY), KEY) == queued_at, "a newer message put the chat's expiry off"
    await outbox.reindex(KEY, queued_at + 60)  # its oldest message given up, the next one is that old
    assert store.zscore(keys.outboxes_of(KEY), KEY) == queued_at + 60
    await outbox.reindex(KEY, None)
    assert store.zscore(keys.outboxes_of(KEY), KEY) is not None, "a chat with messages waiting left the index"


async def test_the_visitors_email_is_kept_a_year_with_the_chat(outbox, store):
    assert await outbox.visitor_email(KEY) is None
    await outbox.keep_visitor_email(KEY, "visitor@example.com")
    assert await outbox.visitor_email(KEY) == "visitor@example.com"
    assert EMAIL_TTL - 60 <= store.ttl(keys.visitor_email(KEY)) <= EMAIL_TTL
    assert await outbox.visitor_email(keys.chat_key("8eb23e93-5ecb-45ba-b726-3b064e0c56ab", "v" * 24)) is None


async def test_a_message_courier_posts_again_keeps_its_place_and_its_frame(
    chip_server, channel, connect, post_msg, rows
):
    chat_id = "q" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    for msg_id, text in [(1, "first"), (2, "second"), (1, "first, posted again")]:
        status, _ = await post_msg(channel["uuid"], chat_id, {"id": msg_id, "text": text, "origin": "flow"})
        assert status == 200
    visitor = await connect(chip_server, channel["uuid"])
    assert (await visitor.start(chat_id))["type"] == "chat_resumed"
    received = [(await visitor.expect("chat_out"))["msg_out"] for _ in range(2)]
    assert [(out["id"], out["text"]) for out in received] == [(1, "first"), (2, "second")], (
        "Courier posting a queued message again must leave it where and as it was queued"
    )
    await visitor.silent(0.2)


async def test_a_uuid_acked_in_upper_case_leaves_the_outbox_and_is_reported_delivered(
    store, chip_server, channel, bound, post_msg, courier
):
    visitor = await bound(chip_server, channel)
    await post_msg(channel["uuid"], visitor.chat_id, {"uuid": MSG_UUID, "text": "hi", "origin": "broadcast"})
    assert (await visitor.expect("chat_out"))["msg_out"]["id"] == MSG_UUID
    await visitor.send({"type": "ack_chat", "msg_id": MSG_UUID.upper()})
    key = keys.chat_key(channel["uuid"], visitor.chat_id)
    assert await wait_until(lambda: store.zcard(keys.outbox_order(key)) == 0), (
        "an ack of the uuid in upper case left the message in the outbox"
    )
    await courier.wait_for(lambda: courier.of_type("msg_status", visitor.chat_id))
    assert courier.of_type("msg_status", visitor.chat_id) == [
        {"type": "msg_status", "status": {"msg_uuid": MSG_UUID, "status": "delivered"}}
    ]


async def test_a_chat_whose_last_message_is_acked_no_longer_counts_as_waiting(
    store, chip_server, channel, bound, post_msg
):
    visitor = await bound(chip_server, channel)
    key = keys.chat_key(channel["uuid"], visitor.chat_id)
    await post_msg(channel["uuid"], visitor.chat_id, {"id": 3, "text": "hi", "origin": "flow"})
    await visitor.expect("chat_out")
    assert store.zscore(keys.outboxes_of(key), key) is not None  # /metrics: chip_outboxes_waiting counts it
    await visitor.send({"type": "ack_chat", "msg_id": 3})
    assert await wait_until(lambda: store.zcard(keys.outbox_order(key)) == 0)
    assert store.zscore(keys.outboxes_of(key), key) is None, (
        "an emptied outbox still counts as a chat with messages waiting"
    )
