"""Giving up stale messages (services/expiry.py): a sweep gives up only the messages older than
--msg-expiry and reports them failed to Courier, a running chip sweeps by itself, and a chat's fresh
messages stay when its stale ones go. First Expiry itself over chip's other services, then a chip."""

import asyncio
import time
from datetime import datetime, timezone

import orjson
import pytest

import chip
from services import events
from services.backoff import RetryPolicy
from services.config import Config
from services.expiry import Expiry
from services.store import keys
from services.store.lock import Locks

EXPIRY = 0.5  # seconds a message may wait in these tests' outboxes


@pytest.fixture
def expiry(services):
    """An Expiry of EXPIRY seconds, without an SMTP server, over chip's other services."""
    return Expiry(
        services.redis,
        Locks(services.scripts),
        services.outbox,
        services.courier_queue,
        services.lookups,
        expiry=EXPIRY,
        metrics=services.metrics,
    )


async def queue(services, key: str, *msg_ids: int):
    """Queue messages for the chat, as Courier's /wc/send does."""
    for msg_id in msg_ids:
        out = events.msg_out(msg_id, f"m{msg_id}", "flow", datetime.now(timezone.utc))
        await services.outbox.queue(key, str(msg_id), orjson.dumps(events.chat_out(out)), 100)


def given_up(services, status: str) -> float:
    """chip_messages_given_up_total{status=...} as /metrics shows it."""
    return services.metrics.registry.get_sample_value("chip_messages_given_up_total", {"status": status})


def failed(*msg_ids: int) -> list:
    return [{"type": "msg_status", "status": {"msg_id": msg_id, "status": "failed"}} for msg_id in msg_ids]


async def test_a_sweep_gives_up_only_stale_messages_and_reports_them_failed_to_courier(
    services, expiry, store, channel, rows, courier
):
    stale_chat, fresh_chat = "s" * 24, "n" * 24
    for chat_id in (stale_chat, fresh_chat):
        rows.contact(channel["org_id"], channel["uuid"], chat_id)
    key, fresh_key = keys.chat_key(channel["uuid"], stale_chat), keys.chat_key(channel["uuid"], fresh_chat)
    # the visitor left an email, but without an SMTP server nothing can be sent to it
    await services.outbox.keep_visitor_email(key, "visitor@example.com")
    await queue(services, key, 1, 2)
    await asyncio.sleep(EXPIRY + 0.1)
    fresh_from = time.time()
    await queue(services, key, 3)
    await queue(services, fresh_key, 4)
    assert await expiry.sweep() == 2
    assert given_up(services, "failed") == 2
    assert [msg_key for msg_key, _ in await services.outbox.window(key, 100)] == ["3"]
    assert [msg_key for msg_key, _ in await services.outbox.window(fresh_key, 100)] == ["4"]
    await courier.wait_for(lambda: courier.of_type("msg_status", stale_chat))
    assert courier.of_type("msg_status", stale_chat) == failed(1, 2)
    assert courier.of_type("msg_status", fresh_chat) == []
    # the chat comes up again when its fresh message turns stale, not before
    assert store.zscore(keys.outboxes_of(key), key) >= fresh_from
    assert await expiry.sweep() == 0
    assert store.get(keys.expire_lock(key)) is None, "a sweep kept the chat's lock after it was done"


async def test_a_chat_whose_messages_all_went_stale_is_swept_once(services, expiry, store, channel, rows, courier):
    chat_id = "g" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    key = keys.chat_key(channel["uuid"], chat_id)
    await queue(services, key, 5)
    assert await expiry.sweep() == 0, "a sweep gave up a message still within --msg-expiry"
    await asyncio.sleep(EXPIRY + 0.1)
    assert await expiry.sweep() == 1
    assert await services.outbox.window(key, 100) == []
    assert store.zscore(keys.outboxes_of(key), key) is None, "an emptied outbox stays due for the next sweep"
    assert await expiry.sweep() == 0
    await courier.wait_for(lambda: courier.of_type("msg_status", chat_id))
    assert courier.of_type("msg_status", chat_id) == failed(5)


async def test_a_running_chip_gives_up_stale_messages_by_itself(pg_url, redis_url, courier, rows, channel, store):
    chat_id = "t" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    config = Config(db=pg_url, valkey=redis_url, courier_url=courier.url, msg_expiry=0.3)
    # a sweep every 0.2 s instead of every minute
    services = await chip.build(config, RetryPolicy.from_config(config, sweep=0.2))
    await services.start()
    try:
        found = await services.lookups.channel(channel["uuid"])
        await services.chats.queue_msg_out(found, chat_id, "sesame", {"id": 7, "text": "anyone?", "origin": "flow"})
        try:
            await courier.wait_for(lambda: courier.of_type("msg_status", chat_id), timeout=5)
        except AssertionError:
            raise AssertionError(
                "a running chip never gave up a stale message by itself (is the expiry loop started?)"
            ) from None
        assert courier.of_type("msg_status", chat_id) == [
            {"type": "msg_status", "status": {"msg_id": 7, "status": "failed"}}
        ]
        assert store.zcard(keys.outbox_order(keys.chat_key(channel["uuid"], chat_id))) == 0
    finally:
        await services.stop()


async def _chat_with_a_stale_message(start_chip, channel, rows, post_msg, chat_id: str, expiry: float):
    """A chip with --msg-expiry `expiry`, and a chat whose message 1 has just turned stale."""
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    server = await start_chip(msg_expiry=expiry)
    await post_msg(channel["uuid"], chat_id, {"id": 1, "text": "stale", "origin": "flow"}, server=server)
    await asyncio.sleep(expiry + 0.1)
    return server, chat_id, keys.chat_key(channel["uuid"], chat_id)


async def test_a_sweep_gives_up_the_stale_messages_of_a_chat_and_keeps_its_fresh_ones(
    store, start_chip, channel, rows, post_msg, courier
):
    server, chat_id, key = await _chat_with_a_stale_message(start_chip, channel, rows, post_msg, "f" * 24, 1.0)
    fresh_from = time.time()
    await post_msg(channel["uuid"], chat_id, {"id": 2, "text": "fresh", "origin": "flow"}, server=server)
    assert await server.services.expiry.sweep() == 1, "the sweep gave up a message still within --msg-expiry"
    assert [k.decode() for k in store.zrange(keys.outbox_order(key), 0, -1)] == ["2"]
    await courier.wait_for(lambda: courier.of_type("msg_status", chat_id))
    assert courier.of_type("msg_status", chat_id) == [
        {"type": "msg_status", "status": {"msg_id": 1, "status": "failed"}}
    ]
    # the chat is due again when its fresh message turns stale, not before
    assert store.zscore(keys.outboxes_of(key), key) >= fresh_from
    assert await server.services.expiry.sweep() == 0


async def test_a_sweep_leaves_alone_a_chat_another_process_is_sweeping(
    store, start_chip, channel, rows, post_msg, courier
):
    server, _, key = await _chat_with_a_stale_message(start_chip, channel, rows, post_msg, "l" * 24, 0.3)
    store.set(keys.expire_lock(key), "another process", px=10_000)
    assert await server.services.expiry.sweep() == 0, "a sweep took a chat whose lock another process holds"
    assert store.zcard(keys.outbox_order(key)) == 1
    assert store.get(keys.expire_lock(key)) == b"another process"
