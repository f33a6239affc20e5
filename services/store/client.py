"""The Redis/Valkey client every service shares, and what a failure of it means to a caller."""

import functools
import logging
import resource

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, parse_url
from redis.exceptions import RedisError
from redis.utils import HIREDIS_AVAILABLE

from services.errors import Unavailable
from services.store.packing import PACKED

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


def connect(url: str) -> aioredis.Redis:
    """A client on its own pool for `url` (redis://, rediss:// or unix://); it connects on first use.

    Room for bursts: redis-py's default of 100 connections became 503s under load, and a blocking
    pool kept the loop waiting for connections (BENCHMARKS.md, "What was tried", "Redis connection
    pool" and "A plain Redis pool")."""
    # as with redis-py's from_url, what the URL says wins over these defaults; but the URL's kind
    # of connection is wrapped, not taken as it is
    options = {"max_connections": max_connections(), "socket_connect_timeout": 3, "socket_timeout": 5,
               "health_check_interval": 30, **parse_url(url)}
    kind = options.get("connection_class", Connection)
    # requirements.txt asks for redis[hiredis]; an install without it still works, packing in Python
    options["connection_class"] = PACKED.get(kind, kind) if HIREDIS_AVAILABLE else kind
    return aioredis.Redis.from_pool(aioredis.ConnectionPool(**options))
