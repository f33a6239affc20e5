"""replicated(): writes confirmed by replicas (WAIT on the writes' own connection), against a real
replica, and a clear Unavailable when it is gone."""

import pytest
import redis

from services.errors import Unavailable
from services.store import keys
from services.store.client import connect
from services.store.replication import replicated


@pytest.fixture
async def master(spare_redis):
    client = connect(spare_redis.url)
    yield client
    await client.aclose()


async def test_writes_a_replica_confirms_are_on_the_replica(master, spare_replica):
    pipe = master.pipeline(transaction=False)
    pipe.set("chip:test:a", "one")
    pipe.incr("chip:test:a")  # a failed command is answered as its exception, as the scripts' batches want
    pipe.set("chip:test:b", "two")
    results = await replicated(master, pipe, "chip:test:a", 1, 1.0)
    assert results[0] is True and isinstance(results[1], redis.ResponseError) and results[2] is True
    replica = redis.Redis(port=spare_replica.port)
    try:
        # WAIT answered, so the replica has both writes: no polling needed
        assert replica.mget("chip:test:a", "chip:test:b") == [b"one", b"two"]
    finally:
        replica.close()


async def test_without_the_replica_the_writes_are_unavailable(master, spare_replica):
    spare_replica.stop()
    pipe = master.pipeline(transaction=False)
    pipe.set("chip:test:a", "one")
    with pytest.raises(Unavailable) as refused:
        await replicated(master, pipe, "chip:test:a", 1, 0.2)
    assert refused.value.status == 503
    assert "0 of the 1 replica(s) asked for confirmed the writes within 0.2 s" in refused.value.message


async def test_more_replicas_than_there_are_is_unavailable(master, spare_replica):
    pipe = master.pipeline(transaction=False)
    pipe.set("chip:test:a", "one")
    with pytest.raises(Unavailable) as refused:
        await replicated(master, pipe, "chip:test:a", 2, 0.2)
    assert "1 of the 2 replica(s)" in refused.value.message


async def test_with_no_replicas_asked_for_the_pipeline_runs_as_it_is(master):
    pipe = master.pipeline(transaction=False)
    pipe.set("chip:test:a", "one")
    pipe.get("chip:test:a")
    assert await replicated(master, pipe, "chip:test:a", 0, 1.0) == [True, b"one"]


async def test_a_lost_connection_is_a_redis_error(master, spare_redis):
    """The master itself gone is what every other call sees (redis_errors turns it into Unavailable)."""
    spare_redis.stop()
    pipe = master.pipeline(transaction=False)
    pipe.set("chip:test:a", "one")
    with pytest.raises(redis.ConnectionError):
        await replicated(master, pipe, "chip:test:a", 1, 0.2)


async def test_with_min_replicas_a_message_is_acknowledged_once_a_replica_has_it(
    spare_redis, spare_replica, start_chip, bound, channel, post_msg, courier
):
    server = await start_chip(valkey=spare_redis.url, valkey_min_replicas=1)
    visitor = await bound(server, channel)
    status, _ = await post_msg(
        channel["uuid"], visitor.chat_id, {"id": 1, "text": "kept twice", "origin": "flow"}, server=server
    )
    assert status == 200
    replica = redis.Redis(port=spare_replica.port)
    try:
        chat = keys.chat_key(channel["uuid"], visitor.chat_id)
        assert replica.zscore(keys.outbox_order(chat), "1") is not None  # on the replica when Courier got 200
    finally:
        replica.close()
    assert (await visitor.expect("chat_out"))["msg_out"]["text"] == "kept twice"

    spare_replica.stop()  # no replica confirms: Courier gets 503 and retries, the visitor is told to
    status, body = await post_msg(
        channel["uuid"], visitor.chat_id, {"id": 2, "text": "unconfirmed", "origin": "flow"}, server=server
    )
    assert status == 503 and "replica" in body["error"]
    # queued all the same (Courier's retry of it is a repeat, which queues nothing twice)
    assert (await visitor.expect("chat_out"))["msg_out"]["id"] == 2
    await visitor.send({"type": "send_msg", "text": "hello?"})
    assert (await visitor.expect("error", timeout=5))["code"] == "unavailable"
