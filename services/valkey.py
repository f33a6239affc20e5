"""The Redis/Valkey client every service shares.

Commands are packed by hiredis, as redis-py's synchronous client already does; its asyncio client
packs them in Python, at about 9 us of CPU per script call against 1.7 us here, and chip makes
three or four such calls per message (BENCHMARKS.md). Like the synchronous client's, the packing
sends text as UTF-8 whatever `encoding` the URL names (chip never names one); replies are decoded
as before.
"""

import functools
import logging
import resource

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection, parse_url
from redis.connection import HiredisRespSerializer
from redis.exceptions import RedisError
from redis.utils import HIREDIS_AVAILABLE

from services.errors import Unavailable

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


class HiredisPacking:
    """Mixin for a redis-py asyncio connection class: pack commands with hiredis."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._packer = HiredisRespSerializer()

    def pack_command(self, *args) -> list[bytes]:
        return [self._pack(args)]

    def pack_commands(self, commands) -> list[bytes]:
        return [b"".join([self._pack(tuple(command)) for command in commands])]

    def _pack(self, args: tuple) -> bytes:
        # hiredis.pack_command straight away for the usual arguments: redis-py's serializer rebuilds
        # every command first, which costs more than the packing itself (4.1 against 1.7 us a call)
        name = args[0]
        if (" " if isinstance(name, str) else b" ") in name:  # CLIENT SETNAME: two arguments
            args = (*name.split(), *args[1:])
        try:
            return hiredis.pack_command(args)
        except TypeError:
            # a memoryview or a bytearray, which the serializer converts, or a value Redis cannot
            # take, for which it raises redis-py's DataError
            return self._packer.pack(*args)[0]


class PackedConnection(HiredisPacking, Connection):
    pass


class PackedSSLConnection(HiredisPacking, SSLConnection):
    pass


class PackedUnixConnection(HiredisPacking, UnixDomainSocketConnection):
    pass


PACKED = {Connection: PackedConnection, SSLConnection: PackedSSLConnection,
          UnixDomainSocketConnection: PackedUnixConnection}


def max_connections() -> int:
    """Redis connections per process: up to 1024, but never more than a quarter of the file
    descriptors the process may open (sockets, Courier and the database need the rest). Past
    that a call fails at once: /wc/send answers 503 and Courier retries."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(1024, soft // 4)) if soft != resource.RLIM_INFINITY else 1024


def client(url: str) -> aioredis.Redis:
    """A client on its own pool for `url` (redis://, rediss:// or unix://); it connects on first use.

    Room for bursts: redis-py's default of 100 connections became 503s under load, and a blocking
    pool cost about 12 % of the loop waiting for connections (BENCHMARKS.md)."""
    # as with redis-py's from_url, what the URL says wins over these defaults; but the URL's kind
    # of connection is wrapped, not taken as it is
    options = {"max_connections": max_connections(), "socket_connect_timeout": 3, "socket_timeout": 5,
               "health_check_interval": 30, **parse_url(url)}
    kind = options.get("connection_class", Connection)
    # requirements.txt asks for redis[hiredis]; an install without it still works, packing in Python
    options["connection_class"] = PACKED.get(kind, kind) if HIREDIS_AVAILABLE else kind
    return aioredis.Redis.from_pool(aioredis.ConnectionPool(**options))
