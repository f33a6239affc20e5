"""Reading the per-shard indexes the periodic sweeps walk (services/store/keys.py says why they are
sharded)."""

import redis.asyncio as aioredis

from services.store import keys


async def sweep(redis: aioredis.Redis, index, until: float, most: int) -> list[str]:
    """The chat keys scored up to `until` in every shard of `index` (keys.outboxes, keys.courier_due),
    oldest first, at most `most`. One pipeline: on a cluster, one round trip per primary."""
    async with redis.pipeline(transaction=False) as pipe:
        for number in range(keys.SHARDS):
            pipe.zrangebyscore(index(number), "-inf", until, start=0, num=most, withscores=True)
        found = [entry for shard in await pipe.execute() for entry in shard]
    found.sort(key=lambda entry: entry[1])
    return [chat.decode() for chat, _ in found[:most]]


async def count(redis: aioredis.Redis, index) -> int:
    """How many chats the shards of `index` hold in all."""
    async with redis.pipeline(transaction=False) as pipe:
        for number in range(keys.SHARDS):
            pipe.zcard(index(number))
        return sum(await pipe.execute())


async def soonest(redis: aioredis.Redis, index, per_shard: int) -> list[str]:
    """The chat keys scored lowest in each shard of `index`, `per_shard` of each at most: a bounded
    sample of the whole index, in one pipeline."""
    async with redis.pipeline(transaction=False) as pipe:
        for number in range(keys.SHARDS):
            pipe.zrange(index(number), 0, per_shard - 1)
        return [chat.decode() for shard in await pipe.execute() for chat in shard]
