"""Each chip process's heartbeat in Redis, so that `chip.py admin status` sees every process at once,
on any host: its name, host, port, version, pid, when it started, whether it is ready and how many
sockets it holds.

Invariants:
- a running process beats every BEAT_EVERY seconds, once as soon as Redis answers, and once more as
  it stops (then not ready);
- a process is "<host>:<port>", so a restarted one takes its predecessor's place;
- what has not beat for SEEN_WITHIN seconds is gone from Redis at the next beat of any process, and
  both keys (one hash tag, "{hb}": one slot on a cluster) expire SEEN_WITHIN after the last beat.
"""

import logging
import os
import socket
import time

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError

from services.periodic import Periodic
from services.shutdown import settle
from services.store import keys
from services.store.scripts import Scripts

logger = logging.getLogger(__name__)

BEAT_EVERY = 10.0
SEEN_WITHIN = 60.0


class Heartbeat:
    """`about()` says what changes (state, ready, sockets, ...); the heartbeat adds who and when."""

    def __init__(self, scripts: Scripts, about, port: int, every: float = BEAT_EVERY):
        self.about = about
        self.port = port  # the port served; chip.Server sets the one it listens on
        self.host = socket.gethostname()
        self.started = time.time()
        self._beat = scripts.load("heartbeat")
        self._loop = Periodic(self.beat, every, jitter=0.1, name="the heartbeat")

    @property
    def process(self) -> str:
        return f"{self.host}:{self.port}"

    async def beat(self):
        state = {
            "process": self.process,
            "host": self.host,
            "port": self.port,
            "pid": os.getpid(),
            "started": self.started,
            **self.about(),
        }
        try:
            await self._beat(
                states=keys.heartbeats(),
                seen=keys.heartbeats_seen(),
                process=self.process,
                state=orjson.dumps(state),
                now=time.time(),
                keep=SEEN_WITHIN,
            )
        except (RedisError, RedisClusterException, OSError) as e:
            logger.debug("heartbeat not written: %s", e)

    async def start(self):
        await self.beat()
        self._loop.start()

    async def stop(self, timeout: float = 2.0):
        """Stop beating, with a last beat that says the process is stopping (none from a process that
        never reached Redis), for `timeout` seconds at most."""
        if not self._loop.running:
            return
        await self._loop.stop(timeout)
        await settle([self.beat()], timeout, "the last heartbeat", "the process shows as it was for a minute")


async def processes(redis: aioredis.Redis, within: float = SEEN_WITHIN) -> list[dict]:
    """The processes that beat within `within` seconds, by name, each with `seen` (when it last beat)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.heartbeats())
        pipe.zrangebyscore(keys.heartbeats_seen(), time.time() - within, "+inf", withscores=True)
        states, seen = await pipe.execute()
    found = []
    for name, when in seen:
        if name in states:
            found.append({**orjson.loads(states[name]), "seen": when})
    return sorted(found, key=lambda state: state["process"])
