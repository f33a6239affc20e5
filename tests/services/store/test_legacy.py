"""Upgrading from the earlier key layout (services/store/legacy.py): what the earlier release queued is
delivered, in order, and nothing is left under its keys."""

import time

import orjson

from services.store import keys
from services.store.legacy import move_keys


def queue_old_layout(store, chat: str, frames: list[tuple[str, dict]], events: list[dict], email: str):
    """What the release before the sharded layout left in Redis for a chat (its Lua scripts' steps)."""
    old = move_keys(chat)
    order, frame_hash, email_key, event_list = old["order"], old["frames"], old["email"], old["events"]
    outboxes, due = old["outboxes"], old["due"]
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
    out = [
        (str(i), {"id": i, "text": f"old {i}", "type": "text", "origin": "flow", "time": f"2026-11-29T10:00:0{i}Z"})
        for i in (3, 1, 2)
    ]
    texts = [f"queued before the upgrade {i}" for i in range(3)]
    queue_old_layout(
        store, chat, out, [{"type": "msg_in", "msg": {"text": text}} for text in texts], "visitor@example.com"
    )

    server = await start_chip()
    # Courier gets the visitor's messages the old release had not posted yet, in their order
    await courier.wait_for(lambda: len(courier.of_type("msg_in", chat_id)) == 3)
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", chat_id)] == texts
    # the visitor gets the waiting messages, in the order they were queued
    visitor = await connect(server, channel["uuid"])
    assert (await visitor.start(chat_id))["type"] == "chat_resumed"
    got = [(await visitor.expect("chat_out"))["msg_out"]["text"] for _ in out]
    assert got == ["old 3", "old 1", "old 2"]
    assert store.get(keys.visitor_email(chat)) == b"visitor@example.com"
    assert 0 < store.ttl(keys.visitor_email(chat)) <= 3600
    # and nothing is left under the old keys
    assert [k for n, k in move_keys(chat).items() if not n.startswith("n_") and store.exists(k)] == []
