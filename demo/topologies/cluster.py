"""A Redis Cluster of real redis-servers, to kill, fail over and reshard."""

import redis.asyncio.cluster
from redis.crc import key_slot

from demo.topologies.base import DATA_CONFIG, FAILOVER_TIMEOUT, HOST, START_TIMEOUT, Server, Topology, TopologyError

SLOTS = 16384


class Cluster(Topology):
    """A Redis Cluster: `primaries` primaries with `replicas` replicas each; the slots split evenly.
    Its nodes listen on `host` and announce it: loopback by default, another local address for
    clients in other network namespaces (tests/deploy/test_hosts.py).

    cluster-node-timeout is short so a killed primary's replica takes over within seconds."""

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1500,
        timeout: float = START_TIMEOUT,
        host: str = HOST,
    ):
        super().__init__("chip-test-cluster-", timeout)
        self.host = host
        self.primary_count = primaries
        config = [
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-node-timeout {node_timeout_ms}",
            # a replica takes over however long its link was down: the tests kill at will
            "cluster-replica-validity-factor 0",
            *DATA_CONFIG,
        ]
        ports = self._ports(primaries * (1 + replicas), bus=True)
        self.nodes = [self._add(f"node-{port}", port, config, host=host) for port in ports]

    @property
    def sharded_pubsub(self) -> bool:
        """Whether SPUBLISH/SSUBSCRIBE exist (Redis >= 7)."""
        return self.version >= (7,)

    @property
    def url(self) -> str:
        """chip's form: valkey+cluster://host:p1,127.0.0.1:p2,.../ (every node, dead ones included)."""
        return "valkey+cluster://" + ",".join(f"{self.host}:{node.port}" for node in self.nodes) + "/"

    def client(self, **kwargs) -> redis.asyncio.cluster.RedisCluster:
        """A plain redis-py asyncio RedisCluster that starts from every node; the caller closes it."""
        startup = [redis.asyncio.cluster.ClusterNode(self.host, node.port) for node in self.nodes]
        return redis.asyncio.cluster.RedisCluster(startup_nodes=startup, **kwargs)

    def _start(self):
        for node in self.nodes:
            self._run(node)
        for node in self.nodes:
            node.wait_ready(self.timeout)
            with node.client() as client:
                node.id = client.execute_command("CLUSTER", "MYID")
        primaries, replicas = self.nodes[: self.primary_count], self.nodes[self.primary_count :]
        for i, node in enumerate(primaries):
            first, last = i * SLOTS // len(primaries), (i + 1) * SLOTS // len(primaries)
            with node.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last))
        with self.nodes[0].client() as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER", "MEET", self.host, node.port)
        self._wait(
            "every cluster node knowing every other",
            lambda: all(self._view(node).keys() == {n.id for n in self.nodes} for node in self.nodes),
        )
        for i, node in enumerate(replicas):
            with node.client() as client:
                client.execute_command("CLUSTER", "REPLICATE", primaries[i % len(primaries)].id)
        self.wait_settled()

    def _view(self, node: Server) -> dict[str, dict]:
        """CLUSTER NODES as `node` sees it: node ID -> port, flags, master ID, slot ranges it serves."""
        with node.client() as client:
            text = client.execute_command("CLUSTER", "NODES")
        view = {}
        for line in text.splitlines():
            node_id, address, flags, master = line.split()[:4]
            view[node_id] = dict(
                port=int(address.split("@")[0].rsplit(":", 1)[1]),
                flags=set(flags.split(",")),
                master=master,
                slots=[s for s in line.split()[8:] if not s.startswith("[")],
            )
        return view

    def _node(self, node_id: str) -> Server:
        return next(node for node in self.nodes if node.id == node_id)

    def _settled(self) -> bool:
        """cluster_state:ok on every live node, all of them agreeing on the slots' owners (all alive),
        none seeing another live one as failing, every live replica's link up and synced."""
        live = self._live(self.nodes)
        slot_maps = set()
        for node in live:
            with node.client() as client:
                if "cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                    return False
            view = self._view(node)
            for other in live:
                if other.id not in view or view[other.id]["flags"] & {"fail", "fail?", "handshake", "noaddr"}:
                    return False
            slot_maps.add(
                frozenset((tuple(entry["slots"]), node_id) for node_id, entry in view.items() if entry["slots"])
            )
        if len(slot_maps) != 1 or not {node_id for _, node_id in next(iter(slot_maps))} <= {n.id for n in live}:
            return False
        return all(role[0] == "master" or role[3] == "connected" for role in (node.role() for node in live))

    def wait_settled(self, timeout: float | None = None):
        self._wait(
            "cluster settled (cluster_state:ok everywhere, one slot map, replicas in sync)", self._settled, timeout
        )

    def primaries(self) -> list[Server]:
        return [node for node in self._live(self.nodes) if node.role()[0] == "master"]

    def replicas(self) -> list[Server]:
        return [node for node in self._live(self.nodes) if node.role()[0] == "slave"]

    @staticmethod
    def slot_of(key: str | bytes) -> int:
        return key_slot(key.encode() if isinstance(key, str) else key)

    def owner(self, slot: int) -> Server:
        """The primary serving `slot`, as the first live node sees it."""
        for node_id, entry in self._view(self._live(self.nodes)[0]).items():
            for served in entry["slots"]:
                first, _, last = served.partition("-")
                if int(first) <= slot <= int(last or first):
                    return self._node(node_id)
        raise TopologyError(f"no node serves slot {slot}")

    def primary_of(self, key: str | bytes) -> Server:
        return self.owner(self.slot_of(key))

    def kill_primary_of(self, key: str | bytes) -> Server:
        """SIGKILL the primary serving `key`'s slot; the killed node (its replica has not taken over yet)."""
        node = self.primary_of(key)
        node.kill()
        return node

    def wait_failover(self, key: str | bytes, timeout: float = FAILOVER_TIMEOUT) -> Server:
        """Wait until a live node serves `key`'s slot and the cluster is settled again; that node."""
        slot = self.slot_of(key)
        return self._wait(
            f"a live primary serving slot {slot} in a settled cluster",
            lambda: self._settled() and self.owner(slot),
            timeout,
        )

    def migrate_slot(self, slot: int, to: Server, batch: int = 100):
        """Live resharding of one slot onto the primary `to`: IMPORTING/MIGRATING, its keys MIGRATEd
        `batch` at a time (clients meanwhile get ASK redirects), then SETSLOT NODE on every primary."""
        source = self.owner(slot)
        if source is to:
            return
        others = [node for node in self.primaries() if node not in (source, to)]
        with source.client(decode=False) as src, to.client() as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", to.id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
                src.execute_command("MIGRATE", self.host, to.port, "", 0, 5000, "KEYS", *keys)
        for node in (to, source, *others):  # the new owner first: it must not bounce clients back
            with node.client() as client:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", to.id)
        self.wait_settled()

    def heal(self):
        """Restart every killed node (a killed primary comes back as its successor's replica) and
        wait until the cluster is settled."""
        for node in self.nodes:
            if not node.alive:
                self._run(node)
                node.wait_ready(self.timeout)
        self.wait_settled()

    def flush(self):
        for node in self.primaries():
            with node.client() as client:
                client.flushall()
