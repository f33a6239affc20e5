"""The Redis/Valkey client every service shares, and what a failure of it means to a caller."""

import functools
import logging
import resource

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection, SentinelManagedSSLConnection
from redis.exceptions import RedisError
from redis.utils import HIREDIS_AVAILABLE

from services.errors import Unavailable
from services.store.packing import PACKED
from services.store.url import StoreURL, parse_store_url

logger = logging.getLogger(__name__)


def redis_errors(action: str):
    """Decorator: a Redis failure inside `action` surfaces as Unavailable (503, or `unavailable`)."""

    def wrap(method):
        @functools.wraps(method)
        async def call(*args, **kwargs):
            try:
                return await method(*args, **kwargs)
            except (RedisError, OSError) as e:
                logger.warning("redis unavailable while %s: %s", action, e)
                raise Unavailable("message store unavailable") from e

        return call

    return wrap


def max_connections() -> int:
    """Redis connections per process: up to 1024, but never more than a quarter of the file
    descriptors the process may open (sockets, Courier and the database need the rest). Past
    that a call fails at once: /wc/send answers 503 and Courier retries."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(1024, soft // 4)) if soft != resource.RLIM_INFINITY else 1024


def connect(url: str) -> aioredis.Redis | RedisCluster:
    """A client for a --valkey URL (services/store/url.py); it connects on first use. One server: a
    Redis on its own pool. A cluster: a RedisCluster that finds every node from the seeds and follows
    MOVED and ASK itself. Sentinel: the Redis client of the service's master, which asks the sentinels
    where the master is and again after a failover. ValueError if the URL is not one chip can use.

    Room for bursts: redis-py's default of 100 connections (per node, for a cluster) turns load into
    503s, and a blocking pool keeps the loop waiting for connections (BENCHMARKS.md, "What was tried",
    "Redis connection pool" and "A plain Redis pool")."""
    target = parse_store_url(url)
    # as with redis-py's from_url, what the URL says wins over these defaults
    options = {
        "max_connections": max_connections(),
        "socket_connect_timeout": 3,
        "socket_timeout": 5,
        "health_check_interval": 30,
        **target.options,
    }
    if target.kind == "cluster":
        # RedisCluster takes no connection class (it picks redis-py's own, plain or TLS): its commands
        # are packed in Python
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes], ssl=target.tls, **options
        )
    if target.kind == "sentinel":
        return _sentinel_master(target, options)
    # the URL's kind of connection is wrapped, not taken as it is
    return aioredis.Redis.from_pool(
        aioredis.ConnectionPool(**{**options, "connection_class": _packed(options.get("connection_class", Connection))})
    )


class SentinelMaster(aioredis.Redis):
    """The client of the master the sentinels name; closing it closes the connections to them too."""

    sentinel: Sentinel

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            await self.sentinel.aclose()


def _sentinel_master(target: StoreURL, options: dict) -> SentinelMaster:
    # the sentinels get the same user, password, TLS and timeouts as the master; not its pool size
    sentinel_options = {name: value for name, value in options.items() if name != "max_connections"}
    sentinel = Sentinel(target.nodes, sentinel_kwargs={**sentinel_options, "ssl": target.tls})
    kind = SentinelManagedSSLConnection if target.tls else SentinelManagedConnection
    master = sentinel.master_for(
        target.service, redis_class=SentinelMaster, db=target.db, connection_class=_packed(kind), **options
    )
    master.sentinel = sentinel
    return master


def _packed(kind: type) -> type:
    # requirements.txt asks for redis[hiredis]; an install without it still works, packing in Python
    return PACKED.get(kind, kind) if HIREDIS_AVAILABLE else kind
