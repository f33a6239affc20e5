"""The shared Redis client (services/store/client.py): the right kind for one server, a cluster or
Sentinel, every kind of connection packing with hiredis (services/store/packing.py, tested beside it),
values round-trip, and settings in the URL win."""

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelConnectionPool, SentinelManagedConnection, SentinelManagedSSLConnection

from services.store import client as store_client
from services.store import packing
from services.store.client import connect


@pytest.mark.parametrize(
    "url, base",
    [
        ("redis://127.0.0.1:6379/0", Connection),
        ("rediss://127.0.0.1:6380/0", SSLConnection),
        ("unix:///run/redis.sock?db=1", UnixDomainSocketConnection),
    ],
)
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


async def test_a_cluster_url_is_a_cluster_client_on_its_seed_nodes():
    client = connect("valkeys+cluster://chip:hunter2@10.0.0.1:7000,[::1]:7001/?ssl_ca_certs=/etc/ca.pem")
    try:
        assert isinstance(client, RedisCluster)
        assert [(node.host, node.port) for node in client.startup_nodes] == [("10.0.0.1", 7000), ("::1", 7001)]
        settings = client.connection_kwargs
        assert settings["connection_class"] is SSLConnection and settings["ssl_ca_certs"] == "/etc/ca.pem"
        assert (settings["username"], settings["password"]) == ("chip", "hunter2")
        # chip's pool size and timeouts, for each node
        assert settings["max_connections"] == store_client.max_connections()
        assert (settings["socket_connect_timeout"], settings["socket_timeout"]) == (3, 5)
    finally:
        await client.aclose()


async def test_a_cluster_url_without_tls_has_plain_connections():
    client = connect("redis+cluster://10.0.0.1")
    try:
        assert [(node.host, node.port) for node in client.startup_nodes] == [("10.0.0.1", 6379)]
        assert client.connection_kwargs["connection_class"] is Connection
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "url, base, ssl",
    [
        ("valkey+sentinel://:hunter2@10.0.0.1,10.0.0.2:26380/mymaster/3", SentinelManagedConnection, False),
        ("rediss+sentinel://:hunter2@10.0.0.1,10.0.0.2:26380/mymaster/3", SentinelManagedSSLConnection, True),
    ],
)
async def test_a_sentinel_url_is_the_client_of_the_services_master(url, base, ssl):
    client = connect(url)
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster" and pool.is_master
        assert issubclass(pool.connection_class, base) and issubclass(pool.connection_class, packing.HiredisPacking)
        assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (3, "hunter2")
        assert pool.max_connections == store_client.max_connections()
        # the sentinels are asked with the same password and TLS
        sentinels = [sentinel.connection_pool for sentinel in client.sentinel.sentinels]
        assert [(p.connection_kwargs["host"], p.connection_kwargs["port"]) for p in sentinels] == [
            ("10.0.0.1", 26379),
            ("10.0.0.2", 26380),
        ]
        assert all(p.connection_kwargs["password"] == "hunter2" for p in sentinels)
        assert all(issubclass(p.connection_class, SSLConnection) == ssl for p in sentinels)
    finally:
        await client.aclose()


@pytest.mark.parametrize("url", ["valkey://127.0.0.1:6379/0", "valkeys://127.0.0.1:6380/0"])
async def test_valkey_urls_are_redis_urls_by_another_name(url):
    client = connect(url)
    try:
        assert type(client) is Redis
        assert issubclass(client.connection_pool.connection_class, SSLConnection) == url.startswith("valkeys")
    finally:
        await client.aclose()


def test_a_url_chip_cannot_use_is_a_value_error():
    with pytest.raises(ValueError, match="a cluster has only database 0"):
        connect("valkey+cluster://10.0.0.1:7000/2")
