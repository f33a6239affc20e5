"""The shared Redis client (services/store/client.py): every kind of connection packs with hiredis, values
round-trip, and settings in the URL win."""

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from services.store import packing
from services.store import client as store_client
from services.store.client import connect


@pytest.mark.parametrize("url, base", [
    ("redis://127.0.0.1:6379/0", Connection),
    ("rediss://127.0.0.1:6380/0", SSLConnection),
    ("unix:///run/redis.sock?db=1", UnixDomainSocketConnection),
])
async def test_tls_and_unix_socket_urls_keep_their_kind_of_connection(url, base):
    client = connect(url)
    try:
        assert issubclass(client.connection_pool.connection_class, base)
        assert issubclass(client.connection_pool.connection_class, packing.HiredisPacking)
    finally:
        await client.aclose()


async def test_values_round_trip_through_redis(redis_url, store):
    client = connect(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.set("ünïcode ☃", "日本語")
        pipe.set(b"bytes\x00key", b"\xff\xfe binary")
        pipe.set("float", 1795615980.123)
        pipe.execute_command("CLIENT SETNAME", "chip-test")
        pipe.execute_command("CLIENT GETNAME")
        assert (await pipe.execute())[-1] == "chip-test"
    finally:
        await client.aclose()
    assert store.get("ünïcode ☃") == "日本語".encode()
    assert store.get(b"bytes\x00key") == b"\xff\xfe binary"
    assert float(store.get("float")) == 1795615980.123


async def test_without_hiredis_the_client_packs_as_redis_py_does(redis_url, store, monkeypatch):
    monkeypatch.setattr(store_client, "HIREDIS_AVAILABLE", False)
    client = connect(redis_url)
    try:
        assert client.connection_pool.connection_class is Connection
        await client.set("plain", "value")
    finally:
        await client.aclose()
    assert store.get("plain") == b"value"


async def test_settings_in_the_url_win_over_chips_defaults(redis_url):
    client = connect(redis_url + ("&" if "?" in redis_url else "?") + "socket_timeout=2&health_check_interval=7")
    try:
        assert client.connection_pool.connection_kwargs["socket_timeout"] == 2
        assert client.connection_pool.connection_kwargs["health_check_interval"] == 7
        assert await client.ping()
    finally:
        await client.aclose()
