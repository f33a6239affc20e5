"""Fixtures of the deployment tests: chip "hosts" in network namespaces (deploy/hosts/hosts.sh)."""

import os
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from tests.forwarder import Forwarder
from tests.servers import ROOT, ChipProcess
from tests.topologies import Cluster, unsupported

HOSTS_SH = ROOT / "deploy" / "hosts" / "hosts.sh"
GATEWAY = "10.77.0.254"  # the root namespace's address on the hosts' bridge (hosts.sh)
STEP_TIMEOUT = 30  # seconds any one ip/hosts.sh command gets


def namespaces_unsupported() -> str | None:
    """Why this machine cannot create network namespaces (not root, no CAP_NET_ADMIN...), or None."""
    probe = f"chip-probe-{os.getpid()}"
    try:
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=STEP_TIMEOUT)
    except OSError as e:
        return f"cannot run ip: {e}"
    if made.returncode != 0:
        return f"cannot create a network namespace (ip netns add: {made.stderr.strip()})"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True, timeout=STEP_TIMEOUT)
    return None


def hosts_sh(action: str):
    subprocess.run(["sh", str(HOSTS_SH), action], check=True, capture_output=True, text=True, timeout=STEP_TIMEOUT)


@dataclass
class Hosts:
    """The three hosts' namespaces (chip-h1..3, address 10.77.0.N), reachable from this namespace."""

    count: int = 3

    @staticmethod
    def address(n: int) -> str:
        return f"10.77.0.{n}"

    @staticmethod
    def namespace(n: int) -> str:
        return f"chip-h{n}"

    @staticmethod
    def cut(n: int):
        """Take host n's link down at the root end of its veth pair: its packets go nowhere."""
        subprocess.run(["ip", "link", "set", f"chip-v{n}", "down"], check=True, timeout=STEP_TIMEOUT)


@pytest.fixture
def hosts():
    """hosts.sh up for the test, down at its end (failed or not); skipped, with the reason printed,
    where the machine cannot create network namespaces."""
    reason = namespaces_unsupported()
    if reason:
        print(f"skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)
    hosts_sh("up")
    try:
        yield Hosts()
    finally:
        hosts_sh("down")


@pytest.fixture
def hosts_cluster(hosts):
    """A Redis Cluster of the test's own whose nodes listen on the bridge's address, so every host reaches it."""
    reason = unsupported()
    if reason:
        pytest.skip(reason)
    with Cluster(host=GATEWAY) as cluster:
        yield cluster


@pytest.fixture
async def forward(hosts):
    """forward(target) -> (GATEWAY, port): target ((host, port) or a Unix socket's path), reachable
    from the hosts there; stopped at teardown."""
    started = []

    async def start(target: tuple[str, int] | str) -> tuple[str, int]:
        started.append(await Forwarder(GATEWAY, 0, target).start())
        return GATEWAY, started[-1].server.sockets[0].getsockname()[1]

    yield start
    for forwarder in started:
        await forwarder.stop()


@pytest.fixture
async def host_chips(hosts, hosts_cluster, forward, pg_url, courier):
    """chip on each host (ip netns exec chip-hN chip.py --address 10.77.0.N), sharing the cluster,
    reaching PostgreSQL and the Courier double through forwarders; killed by PID at teardown."""
    db = urlsplit(pg_url)
    query = dict(parse_qsl(db.query))
    socket_dir = query.pop("host", None)  # a Unix socket's folder: the embedded PostgreSQL's form
    port = db.port or 5432
    target = f"{socket_dir}/.s.PGSQL.{port}" if socket_dir else (db.hostname or "127.0.0.1", port)
    db_host, db_port = await forward(target)
    credentials, at, _ = db.netloc.rpartition("@")
    db_url = urlunsplit(db._replace(netloc=f"{credentials}{at}{db_host}:{db_port}", query=urlencode(query)))
    courier_url = urlsplit(courier.url)
    courier_host, courier_port = await forward((courier_url.hostname, courier_url.port))
    started = []
    try:
        for n in range(1, hosts.count + 1):
            started.append(
                ChipProcess(
                    "--db",
                    db_url,
                    "--valkey",
                    hosts_cluster.url,
                    "--courier-url",
                    f"http://{courier_host}:{courier_port}",
                    "--instance-id",
                    hosts.namespace(n),
                    address=hosts.address(n),
                    wrapper=("ip", "netns", "exec", hosts.namespace(n)),
                )
            )
        yield started
    finally:
        for process in started:
            process.stop()
