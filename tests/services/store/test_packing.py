"""hiredis packing (services/store/packing.py) says exactly what redis-py would."""

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from services.store import packing

ARGS = [
    ("SET", "plain", "value"),
    ("SET", "ünïcode ☃", "日本語"),
    ("SET", b"bytes\x00key", b"\xff\xfe binary"),
    ("EVALSHA", "a" * 40, 2, "k1", "k2", 12345, 1795615980.123, -1, 0.5),
    ("CLIENT SETNAME", "chip"),  # a command name of two words goes as two arguments
    ("SET", memoryview(b"view"), bytearray(b"array")),
]


@pytest.mark.parametrize("args", ARGS, ids=lambda args: str(args[0]))
def test_commands_are_packed_as_redis_py_packs_them(args):
    assert b"".join(packing.PackedConnection().pack_command(*args)) == b"".join(Connection().pack_command(*args))


def test_a_pipeline_is_one_buffer_of_every_command_in_order():
    assert packing.PackedConnection().pack_commands(ARGS) == [b"".join(Connection().pack_commands(ARGS))]


def test_every_kind_of_connection_packs_with_hiredis():
    # redis-py's own packing gives the same bytes, so only this tells that the mixin's runs
    for packed in packing.PACKED.values():
        assert packed.pack_command is packing.HiredisPacking.pack_command
        assert packed.pack_commands is packing.HiredisPacking.pack_commands


def test_an_argument_redis_cannot_take_is_a_data_error():
    with pytest.raises(DataError):
        packing.PackedConnection().pack_command("SET", "key", {"a": "dict"})
