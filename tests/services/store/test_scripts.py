"""Scripts called in one turn of the loop share one pipeline, and each still gets its own answer."""

import asyncio

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError, ResponseError

from services.store.scripts import Scripts

COUNT = "return redis.call('INCR', KEYS[1])"
FAIL_ON_ODD = "if tonumber(ARGV[1]) % 2 == 1 then return redis.error_reply('odd ' .. ARGV[1]) end return ARGV[1]"


@pytest.fixture
async def scripts(redis_url):
    client = aioredis.Redis.from_url(redis_url, client_name="scripts-under-test")
    yield Scripts(client)
    await client.aclose()


async def test_calls_of_one_turn_run_in_the_order_they_were_made_over_one_connection(scripts, store):
    count = scripts.register(COUNT)
    assert await count(keys=["counter"]) == 1  # connects, and loads the script
    results = await asyncio.gather(*[count(keys=["counter"]) for _ in range(50)])
    assert results == list(range(2, 52))
    # a round trip each would have taken up to 50 connections from the pool at once (counted by
    # name: whatever else uses this Redis meanwhile has its own connections)
    assert [c["name"] for c in store.client_list()].count("scripts-under-test") == 1


async def test_a_failing_call_fails_alone(scripts):
    odd = scripts.register(FAIL_ON_ODD)
    results = await asyncio.gather(*[odd(args=[i]) for i in range(6)], return_exceptions=True)
    assert [r for r in results[0::2]] == [b"0", b"2", b"4"]
    assert all(isinstance(r, ResponseError) and f"odd {i}" in str(r) for i, r in zip((1, 3, 5), results[1::2]))


async def test_scripts_come_back_after_redis_forgets_them(scripts, store):
    count = scripts.register(COUNT)
    assert await count(keys=["counter"]) == 1
    store.script_flush()  # as after a restart of Redis
    assert await asyncio.gather(count(keys=["counter"]), count(keys=["counter"])) == [2, 3]


async def test_callers_hear_that_redis_is_gone(unused_tcp_port):
    client = aioredis.Redis(port=unused_tcp_port, socket_connect_timeout=1)
    count = Scripts(client).register(COUNT)
    with pytest.raises(ConnectionError):
        await count(keys=["counter"])
    await client.aclose()


async def test_calls_that_ran_keep_their_answers_when_reloading_the_others_fails(spare_redis):
    # a user who may run scripts but not load them: the NOSCRIPT call fails, the one that ran must
    # not be reported failed (its caller would do it again: a second msg_in to Courier, say)
    admin = redis.Redis.from_url(spare_redis.url)
    admin.execute_command("ACL", "SETUSER", "runner", "on", ">pw", "~*", "&*", "+@all", "-script")
    append = "return redis.call('RPUSH', KEYS[1], ARGV[1])"
    admin.script_load(append)
    client = aioredis.Redis.from_url(spare_redis.url.replace("redis://", "redis://runner:pw@"))
    scripts = Scripts(client)
    ran, missing = scripts.register(append), scripts.register(COUNT)
    results = await asyncio.gather(ran(keys=["list"], args=["once"]), missing(keys=["counter"]), return_exceptions=True)
    await client.aclose()
    assert results[0] == 1
    assert isinstance(results[1], Exception)
    assert admin.lrange("list", 0, -1) == [b"once"]
    admin.close()


async def test_scripts_run_in_batches_on_a_cluster(cluster):
    client = cluster.client()
    try:
        count = Scripts(client).register(COUNT)
        counters = [f"counter:{n}" for n in range(20)]  # keys on every primary
        assert len({cluster.slot_of(key) for key in counters}) > 3
        assert await asyncio.gather(*[count(keys=[key]) for key in counters]) == [1] * 20
        assert await asyncio.gather(*[count(keys=[key]) for key in counters]) == [2] * 20
    finally:
        await client.aclose()
