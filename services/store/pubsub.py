"""The wake-up channels: how a process that queues a message for a chat tells the process holding
the chat's sockets, whichever node of a cluster either talks to.

Sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7 and Valkey) where the server has it: a wake-up then
travels only to the node that owns the chat's slot, instead of to every node of a cluster. Classic
pub/sub otherwise. redis-py's clients route the subscriptions, and follow a slot that moves; after
any error, Delivery subscribes every held chat again and re-reads their outboxes (the outbox is the
truth, a wake-up only saves a read).
"""

import asyncio
import logging
from typing import NamedTuple

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from services.store.batching import TurnBatch

logger = logging.getLogger(__name__)

# a cluster's sharded subscriptions sit on one connection per node, which redis-py reads in turn,
# waiting on each: first a look at every node without waiting (what is there already is taken at
# once, however busy the others), and only when all are silent a wait of this long on each
CLUSTER_POLL = 0.05


class Wake(NamedTuple):
    kind: str  # "message" (a frame for the chat) or "subscribe" (Redis confirmed a subscription)
    channel: str
    data: bytes | None


class WakeChannels:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self.sharded = False
        self._cluster = isinstance(redis, RedisCluster)
        self._pubsub = None
        # one opening of the connection at a time: redis-py's PubSub opens it on first use, and
        # subscriptions made at once would each open one, all but the last left subscribed and
        # never read (their wake-ups lost)
        self._connecting = asyncio.Lock()
        # the subscriptions asked for in one turn go as one command: a reconnect storm asks thousands
        self._joining = TurnBatch(self._join)

    @property
    def publish(self) -> str:
        """The command the queueing script publishes a wake-up with."""
        return "SPUBLISH" if self.sharded else "PUBLISH"

    async def start(self):
        """Learn whether the server has sharded pub/sub (it must answer) and open the subscriber."""
        try:
            await self.redis.pubsub_shardnumsub()
            self.sharded = True
        except ResponseError:  # unknown command: Redis 6 or older
            self.sharded = False
        logger.info("wake-ups by %s pub/sub", "sharded" if self.sharded else "classic")
        self._pubsub = self.redis.pubsub()

    @property
    def subscribed(self) -> bool:
        return self._pubsub is not None and self._pubsub.subscribed

    async def subscribe(self, *channels: str):
        """Subscribe the channels; with none, only make sure the connection is open."""
        if not self._cluster and (not channels or self._pubsub.connection is None):
            # a cluster's opens one per node as its subscriptions need
            async with self._connecting:
                await self._pubsub.connect()
        if channels:
            await (self._pubsub.ssubscribe if self.sharded else self._pubsub.subscribe)(*channels)

    def join(self, channel: str) -> asyncio.Future:
        """Subscribe one channel, with every other one asked for in this turn of the loop."""
        return self._joining.add(channel)

    async def _join(self, channels: list) -> list:
        await self.subscribe(*channels)
        return [None] * len(channels)

    async def unsubscribe(self, *channels: str):
        await (self._pubsub.sunsubscribe if self.sharded else self._pubsub.unsubscribe)(*channels)

    async def next(self, timeout: float) -> Wake | None:
        """The next wake-up or confirmation, or None after `timeout` seconds (about) of silence."""
        if self.sharded and self._cluster:
            message = await self._pubsub.get_sharded_message(timeout=0)
            if message is None:
                message = await self._pubsub.get_sharded_message(timeout=CLUSTER_POLL)
        else:
            message = await self._pubsub.get_message(timeout=timeout)
        if not message:
            return None
        kind = message["type"]
        if kind in ("message", "smessage"):
            return Wake("message", message["channel"].decode(), message["data"])
        if kind in ("subscribe", "ssubscribe"):
            return Wake("subscribe", message["channel"].decode(), None)
        return None

    async def aclose(self):
        if self._pubsub is not None:
            await self._pubsub.aclose()
