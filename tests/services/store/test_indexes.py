"""The sweeps' reads of the per-shard indexes: chunked, and a few shards at each look in turn."""

import redis.asyncio as aioredis

from services.store import indexes, keys


def test_a_rotation_reads_every_shard_once_per_round():
    rotation = indexes.Rotation(per_look=16)
    assert rotation.next() == list(range(keys.SHARDS))  # the first look takes in everything
    looks = [rotation.next() for _ in range(keys.SHARDS // 16)]
    assert all(len(look) == 16 for look in looks)
    assert sorted(shard for look in looks for shard in look) == list(range(keys.SHARDS))
    assert rotation.next() == looks[0]  # and round again


async def test_a_sweep_finds_the_oldest_due_across_chunks_of_shards(redis_url, store):
    chats = [f"channel:chat{i}" for i in range(300)]
    for i, chat in enumerate(chats):
        store.zadd(keys.courier_due_of(chat), {chat: 1000 + i})
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await indexes.sweep(client, keys.courier_due, 1100, 50) == chats[:50]
        shards = {keys.shard(chat) for chat in chats[:10]}
        found = await indexes.sweep(client, keys.courier_due, 2000, 500, sorted(shards))
        assert set(found) == {chat for chat in chats if keys.shard(chat) in shards}
    finally:
        await client.aclose()
