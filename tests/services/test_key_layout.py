"""The key layout (services/store/keys.py) one layout for a server, Sentinel and a cluster: every key of a
chat lives in one slot, wake-ups go by sharded pub/sub where Redis has it, and what an earlier release
queued under its own keys is delivered after an upgrade."""

import time

import orjson
import pytest
from redis.cluster import key_slot

from services.store import keys
from services.store.legacy import old_keys


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_every_key_of_a_chat_and_its_sweep_indexes_share_one_slot():
    for n in range(500):
        chat = keys.chat_key("0d1e7a46-2f3b-4c6e-9a35-6f1b9d7c8e21", f"chat{n:021d}")
        chat_keys = [keys.outbox_order(chat), keys.outbox_frames(chat), keys.seq(chat), keys.outboxes_of(chat),
                     keys.visitor_email(chat), keys.courier_events(chat), keys.courier_due_of(chat),
                     keys.courier_attempts(chat), keys.courier_lock(chat), keys.expire_lock(chat),
                     keys.wake_channel(chat)]
        assert len({slot(k) for k in chat_keys}) == 1, chat


def test_chats_spread_over_every_shard_and_the_shards_over_many_slots():
    shards = {keys.shard(keys.chat_key("c", f"chat{n}")) for n in range(5000)}
    assert shards == set(range(keys.SHARDS))
    slots = {slot(keys.outboxes(n)) for n in range(keys.SHARDS)}
    assert len(slots) == keys.SHARDS  # no two shards pinned to one slot, so resharding can split them
    # a cluster's 3 primaries hold slots 0-5460, 5461-10922, 10923-16383: each gets a fair part
    per_primary = [sum(lo <= s <= hi for s in slots) for lo, hi in ((0, 5460), (5461, 10922), (10923, 16383))]
    assert min(per_primary) > keys.SHARDS / 3 * 0.6, per_primary


def test_a_chat_key_comes_back_from_its_wake_channel():
    chat = keys.chat_key("0d1e7a46-2f3b-4c6e-9a35-6f1b9d7c8e21", "65vbbDAQCdPdEWlEhDGy4utO")
    assert keys.chat_from_wake(keys.wake_channel(chat)) == chat


@pytest.fixture(params=["redis 7 (sharded)", "redis 6 (classic)"])
def wake_store(request, redis_url, spare_redis):
    """Redis 7 (the suite's) or the embedded redis-server, 6.2, which has no sharded pub/sub."""
    return (redis_url, True) if "7" in request.param else (spare_redis.url, False)


async def test_a_message_queued_on_one_process_reaches_a_visitor_on_another(wake_store, start_chip, bound,
                                                                            channel, post_msg):
    url, sharded = wake_store
    holder = await start_chip(valkey=url)
    other = await start_chip(valkey=url)
    assert holder.services.delivery.wakes.sharded is sharded
    visitor = await bound(holder, channel)
    await visitor.silent(0.2)  # subscribed: the chat's outbox was read once, empty
    assert (await post_msg(channel["uuid"], visitor.chat_id, {"id": 7, "text": "from the other", "origin": "flow"}, server=other))[0] == 200
    assert (await visitor.expect("chat_out", timeout=3))["msg_out"]["text"] == "from the other"


def queue_old_layout(store, chat: str, frames: list[tuple[str, dict]], events: list[dict], email: str):
    """What the release before the sharded layout left in Redis for a chat (its Lua scripts' steps)."""
    order, frame_hash, email_key, event_list, _lock, outboxes, due, _attempts = old_keys(chat)
    now = time.time()
    for msg_key, out in frames:
        store.hset(frame_hash, msg_key, orjson.dumps({"type": "chat_out", "msg_out": out}))
        store.zadd(order, {msg_key: store.incr("chip:seq")})
    store.zadd(outboxes, {chat: now - 5}, nx=True)
    for event in events:
        store.rpush(event_list, orjson.dumps({"t": now, "e": event}))
    if events:
        store.zadd(due, {chat: now}, nx=True)
    store.set(email_key, email, ex=3600)


async def test_an_upgrade_delivers_what_the_earlier_layout_queued(store, start_chip, connect, channel, rows, courier):
    chat_id = "u" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    chat = keys.chat_key(channel["uuid"], chat_id)
    out = [(str(i), {"id": i, "text": f"old {i}", "type": "text", "origin": "flow",
                     "time": "2026-11-29T10:00:0%dZ" % i}) for i in (3, 1, 2)]
    queue_old_layout(store, chat, out, [{"type": "msg_in", "msg": {"text": "queued before the upgrade"}}],
                     "visitor@example.com")

    server = await start_chip()
    # Courier gets the visitor's message the old release had not posted yet
    await courier.wait_for(lambda: courier.of_type("msg_in", chat_id))
    assert courier.of_type("msg_in", chat_id)[0]["msg"]["text"] == "queued before the upgrade"
    # the visitor gets the waiting messages, in the order they were queued
    visitor = await connect(server, channel["uuid"])
    assert (await visitor.start(chat_id))["type"] == "chat_resumed"
    got = [(await visitor.expect("chat_out"))["msg_out"]["text"] for _ in out]
    assert got == ["old 3", "old 1", "old 2"]
    assert store.get(keys.visitor_email(chat)) == b"visitor@example.com"
    assert 0 < store.ttl(keys.visitor_email(chat)) <= 3600
    # and nothing is left under the old keys
    assert [k for k in old_keys(chat) if store.exists(k)] == []
