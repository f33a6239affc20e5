"""Commands packed by hiredis, as redis-py's synchronous client already does; its asyncio client
packs them in Python, at more CPU per script call, and chip makes several such calls per message
(BENCHMARKS.md, "What was tried", "Commands packed by hiredis"). Like the synchronous client's,
the packing sends text as UTF-8 whatever `encoding` the URL names (chip never names one); replies
are decoded as before.
"""

import hiredis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection
from redis.connection import HiredisRespSerializer


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
        # every command first, which costs more than the packing itself
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


class PackedSentinelConnection(HiredisPacking, SentinelManagedConnection):
    pass


class PackedSentinelSSLConnection(HiredisPacking, SentinelManagedSSLConnection):
    pass


# redis-py's connection classes and their packed kin (a cluster's client takes no connection class)
PACKED = {
    Connection: PackedConnection,
    SSLConnection: PackedSSLConnection,
    UnixDomainSocketConnection: PackedUnixConnection,
    SentinelManagedConnection: PackedSentinelConnection,
    SentinelManagedSSLConnection: PackedSentinelSSLConnection,
}
