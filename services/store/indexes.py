"""Reading the per-shard indexes the periodic sweeps walk (services/store/keys.py says why they are
sharded).

A sweep reads its shards CHUNK at a time, a pipeline each, so that no reply is long enough to hold
up the event loop; a loop that looks often (the Courier due loop) reads only the next few shards at
each look (Rotation), so that a look costs a few commands and every shard is read in turn.
"""

import redis.asyncio as aioredis

from services.store import keys

CHUNK = 16  # shards read in one pipeline


async def sweep(redis: aioredis.Redis, index, until: float, most: int, shards=range(keys.SHARDS)) -> list[str]:
    """The chat keys scored up to `until` in these shards of `index` (keys.outboxes, keys.courier_due),
    oldest first, at most `most`. On a cluster, a pipeline is one round trip per primary."""
    shards, found = list(shards), []
    for start in range(0, len(shards), CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for number in shards[start : start + CHUNK]:
                pipe.zrangebyscore(index(number), "-inf", until, start=0, num=most, withscores=True)
            found += [entry for shard in await pipe.execute() for entry in shard]
    found.sort(key=lambda entry: entry[1])
    return [chat.decode() for chat, _ in found[:most]]


class Rotation:
    """Which shards a sweep reads next: all of them at the first look (what a restart finds waiting
    is taken at once), then `per_look` of them, round and round."""

    def __init__(self, per_look: int = CHUNK):
        self.per_look = per_look
        self._next = None

    def next(self) -> list[int]:
        if self._next is None:
            self._next = 0
            return list(range(keys.SHARDS))
        first = self._next
        self._next = (first + self.per_look) % keys.SHARDS
        return [(first + i) % keys.SHARDS for i in range(self.per_look)]


def ask_count(pipe, index):
    """Queue on `pipe` how many chats each shard of `index` holds: keys.SHARDS replies, to add up.
    The caller executes the pipeline, so that these reads share a round trip with its own."""
    for number in range(keys.SHARDS):
        pipe.zcard(index(number))


def ask_soonest(pipe, index, per_shard: int):
    """Queue on `pipe` the chat keys scored lowest in each shard of `index`, `per_shard` of each at
    most (a bounded sample of the whole index): keys.SHARDS replies, for chats_of()."""
    for number in range(keys.SHARDS):
        pipe.zrange(index(number), 0, per_shard - 1)


def chats_of(replies: list) -> list[str]:
    """The chat keys of ask_soonest()'s replies."""
    return [chat.decode() for shard in replies for chat in shard]
