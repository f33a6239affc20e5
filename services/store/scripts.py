"""Lua scripts run in batches: every script call made during one turn of the event loop goes to
Redis in one pipeline (one write, one read for all of them) instead of a round trip each.

Under load, one turn of the loop handles many requests and frames, and each wants a script (queue,
ack, Courier's lock); redis-py would send each on its own. Each call is still its own atomic
script, and the calls of one turn run in the order they were made (services/store/batching.py).
"""

import asyncio
import hashlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from services.store.batching import TurnBatch

logger = logging.getLogger(__name__)


class BatchedScript:
    """A registered script: `await script(keys=[...], args=[...])`, as with redis-py's own."""

    __slots__ = ("scripts", "source", "sha")

    def __init__(self, scripts: "Scripts", source: str):
        self.scripts = scripts
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, keys=(), args=()) -> asyncio.Future:
        return self.scripts.call(self, keys, args)


class Scripts:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self._registered: list[BatchedScript] = []
        self._batch = TurnBatch(self._execute)

    def register(self, source: str) -> BatchedScript:
        script = BatchedScript(self, source)
        self._registered.append(script)
        return script

    def call(self, script: BatchedScript, keys, args) -> asyncio.Future:
        return self._batch.add((script, keys, args))

    async def _execute(self, calls: list) -> list:
        results = await self._pipeline(calls)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:
            # Redis restarted or flushed its scripts: load them all, then run what did not run. The
            # calls that did run keep their answers even if this fails: they must not be repeated.
            logger.info("loading %d scripts into redis", len(self._registered))
            try:
                for script in self._registered:
                    await self.redis.script_load(script.source)
                again = await self._pipeline([calls[i] for i in missing])
            except (RedisError, OSError) as e:
                again = [e] * len(missing)
            for i, result in zip(missing, again):
                results[i] = result
        return results

    async def _pipeline(self, calls: list) -> list:
        pipe = self.redis.pipeline(transaction=False)
        for script, keys, args in calls:
            # by name: redis-py blocks its evalsha() on a cluster pipeline, yet routes EVALSHA by key there
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return await pipe.execute(raise_on_error=False)

    async def stop(self):
        """Wait for the batches already sent (their callers are waiting for the answers)."""
        await self._batch.wait(2)
