"""The Redis topologies chip's issue-15 tests run on (tests/topologies): real servers that plain
redis-py clients use, that fail over, reshard and leave no process behind."""

import asyncio
from pathlib import Path

import pytest
import redis.asyncio

from tests.topologies import Cluster, Sentinel, TopologyError, unsupported

REASON = unsupported()  # why this machine's redis-server cannot run them, if it cannot
needs_topologies = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def running(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


async def write_acknowledged(address: tuple[str, int], key: str, value: str, replicas: int):
    """SET on one connection, then WAIT until `replicas` replicas have it (WAIT counts that connection's writes)."""
    host, port = address
    writer = redis.asyncio.Redis(host=host, port=port, single_connection_client=True)
    try:
        await writer.set(key, value)
        assert await writer.execute_command("WAIT", replicas, 5000) == replicas
    finally:
        await writer.aclose()


@pytest.fixture
async def cluster_client(cluster):
    client = cluster.client()
    await client.initialize()  # pubsub() does not learn the slots itself
    yield client
    await client.aclose()


@pytest.fixture
async def sentinel_client(sentinel):
    client = sentinel.client(socket_timeout=5)
    yield client
    await client.aclose()


async def test_cluster_writes_land_on_the_primary_serving_their_slot(cluster, cluster_client):
    assert [int(a.rsplit(":", 1)[1]) for a in cluster.url.removeprefix("valkey+cluster://").rstrip("/").split(",")] == [
        node.port for node in cluster.nodes
    ]
    keys = [f"key:{i}" for i in range(60)]
    for key in keys:
        await cluster_client.set(key, key)
    assert [await cluster_client.get(key) for key in keys] == [key.encode() for key in keys]
    assert len({cluster.primary_of(key).port for key in keys}) == 3
    for key in keys:
        with cluster.primary_of(key).client() as direct:
            assert direct.get(key) == key


async def test_cluster_sharded_pubsub_when_the_server_has_it(cluster, cluster_client):
    if not cluster.sharded_pubsub:
        pytest.skip(f"Redis {cluster.version} has no sharded pub/sub (Redis >= 7)")
    pubsub = cluster_client.pubsub()
    try:
        await pubsub.ssubscribe("room:1")
        assert await cluster_client.spublish("room:1", "hello") == 1
        for _ in range(50):
            message = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                break
        assert message["data"] == b"hello"
    finally:
        await pubsub.aclose()


async def test_a_key_acknowledged_by_its_replica_survives_its_primary_killed(cluster, cluster_client):
    key = "survivor"
    await cluster_client.set(key, "before")  # the client has learned the slots, and that primary
    primary = cluster.primary_of(key)
    its_replicas = [node for node in cluster.replicas() if node.role()[2] == primary.port]
    await write_acknowledged(primary.address, key, "kept", replicas=1)

    killed = await asyncio.to_thread(cluster.kill_primary_of, key)
    promoted = await asyncio.to_thread(cluster.wait_failover, key)

    assert killed is primary and not killed.alive and killed.pid is None
    assert promoted in its_replicas and promoted.role()[0] == "master"
    assert await cluster_client.get(key) == b"kept"


async def test_migrating_a_slot_keeps_its_keys_readable_throughout(cluster, cluster_client):
    keys = [f"{{moving}}:{i}" for i in range(250)]  # one slot, several MIGRATE batches
    for key in keys:
        await cluster_client.set(key, key)
    slot = cluster.slot_of(keys[0])
    source = cluster.owner(slot)
    target = next(node for node in cluster.primaries() if node is not source)

    migration = asyncio.create_task(asyncio.to_thread(cluster.migrate_slot, slot, target, batch=20))
    rounds = 0
    while not migration.done() or rounds == 0:
        assert [await cluster_client.get(key) for key in keys] == [key.encode() for key in keys]
        rounds += 1
    await migration

    assert cluster.owner(slot) is target
    assert [await cluster_client.get(key) for key in keys] == [key.encode() for key in keys]
    for node, count in ((source, 0), (target, len(keys))):
        with node.client() as direct:
            assert direct.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == count


async def test_sentinel_failover_moves_the_primary_and_keeps_acknowledged_writes(sentinel, sentinel_client):
    before = await sentinel_client.discover_master("chip")
    assert before == sentinel.primary().address
    await write_acknowledged(before, "k", "v", replicas=2)

    promoted = await asyncio.to_thread(sentinel.failover)

    assert await sentinel_client.discover_master("chip") == promoted.address != before
    primary = sentinel_client.master_for("chip")
    try:
        assert await primary.get("k") == b"v"
        await primary.set("after", "1")
    finally:
        await primary.aclose()
    with promoted.client() as direct:
        assert direct.get("after") == "1"
    demoted = {server.port for server in sentinel.replicas()}
    assert before[1] in demoted and demoted == {server.port for server in sentinel.data_servers} - {promoted.port}


async def test_sentinel_promotes_a_replica_when_the_primary_is_killed(sentinel, sentinel_client):
    primary = sentinel_client.master_for("chip")
    try:
        await primary.set("warm", "1")  # the client is connected to the primary that dies
        old = sentinel.primary()
        await write_acknowledged(old.address, "k", "v", replicas=2)

        killed = await asyncio.to_thread(sentinel.kill_primary)
        promoted = await asyncio.to_thread(sentinel.wait_failover, killed)

        assert killed is old and not killed.alive
        assert await sentinel_client.discover_master("chip") == promoted.address != old.address
        assert await primary.get("k") == b"v"
    finally:
        await primary.aclose()


@needs_topologies
@pytest.mark.parametrize("kind", [Cluster, Sentinel])
def test_stop_ends_every_process_it_started(kind):
    topology = kind().start()
    try:
        pids = topology.started_pids
        assert sorted(pids) == sorted(topology.pids) and len(pids) == len(topology.servers)
        assert running(pids) == pids
    finally:
        topology.stop()
    assert running(pids) == []
    assert not topology.directory.exists()


@needs_topologies
def test_a_start_failing_midway_ends_what_it_started():
    topology = Cluster(node_timeout_ms=-1)  # every node refuses this setting and exits
    with pytest.raises(TopologyError, match="exited with status"):
        topology.start()
    assert len(topology.started_pids) == 6
    assert running(topology.started_pids) == []
    assert not topology.directory.exists()
