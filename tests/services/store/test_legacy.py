"""Upgrading from the earlier key layout (services/store/legacy.py): what the earlier release queued is
delivered, in order, and nothing is left under its keys; once that layout has stayed empty, no
process looks for it again."""

import asyncio
import time

import orjson

from services.store import keys
from services.store.legacy import SETTLE, LegacyKeys, move_keys
from services.store.scripts import Scripts
from tests.polling import wait_until


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


# the upgrade pass's pace in these tests: it stops once the old layout has stayed empty SETTLE of them
EVERY = 0.02
SETTLED = SETTLE * EVERY


def leave_email(store, chat: str):
    """An email the earlier release kept for a chat: the old layout's key that lives longest (a year)."""
    store.set(move_keys(chat)["email"], "visitor@example.com", ex=3600)


def moved(store, chat: str) -> bool:
    return not store.exists(move_keys(chat)["email"]) and store.exists(keys.visitor_email(chat))


def empty_since(store) -> float | None:
    since = store.get(keys.legacy_empty_since())
    return None if since is None else float(since)


async def test_a_start_that_finds_nothing_stops_looking_once_the_old_layout_stayed_empty(store, start_chip):
    before = time.time()
    server = await start_chip(retry={"legacy": EVERY})
    assert before <= empty_since(store) <= time.time()  # written by the pass at start
    assert server.services.legacy.looking  # an old process may still queue: not yet
    assert await wait_until(lambda: not server.services.legacy.looking, timeout=SETTLED + 3)
    assert time.time() - empty_since(store) >= SETTLED

    # what is written under the old keys now is left alone, by this process and by one started later
    leave_email(store, "c:late")
    later = await start_chip(retry={"legacy": EVERY})
    await asyncio.sleep(10 * EVERY)
    assert not later.services.legacy.looking
    assert not moved(store, "c:late") and store.exists(move_keys("c:late")["email"])


async def test_passes_go_on_while_they_find_the_old_layout_and_stop_once_it_stayed_empty(store, start_chip):
    leave_email(store, "c:first")
    server = await start_chip(retry={"legacy": EVERY})
    assert moved(store, "c:first")  # before anything is served
    assert await wait_until(lambda: empty_since(store) is not None)  # the next pass found nothing
    first = empty_since(store)

    # an old process not upgraded yet queues again: moved, and the old layout is empty from then on
    leave_email(store, "c:second")
    assert await wait_until(lambda: moved(store, "c:second"))
    assert await wait_until(lambda: (empty_since(store) or 0) > first)
    assert server.services.legacy.looking
    assert await wait_until(lambda: not server.services.legacy.looking, timeout=SETTLED + 3)
    assert time.time() - empty_since(store) >= SETTLED


async def test_off_never_looks_for_the_old_layout(store, start_chip):
    leave_email(store, "c:old")
    server = await start_chip(retry={"legacy": EVERY}, legacy_upgrade="off")
    await asyncio.sleep(10 * EVERY)
    assert not server.services.legacy.looking
    assert not moved(store, "c:old") and empty_since(store) is None


async def test_on_a_cluster_nothing_is_looked_for_nor_written(cluster):
    client = cluster.client()
    try:
        legacy = LegacyKeys(client, Scripts(client), interval=EVERY)
        await legacy.start()
        assert not legacy.looking
        assert await client.get(keys.legacy_empty_since()) is None
        await legacy.stop()
    finally:
        await client.aclose()
