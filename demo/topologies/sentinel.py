"""A primary with replicas under Sentinel, all real redis-servers, to fail over and kill."""

import redis.asyncio.sentinel

from demo.topologies.base import DATA_CONFIG, FAILOVER_TIMEOUT, HOST, START_TIMEOUT, Server, Topology


class Sentinel(Topology):
    """A primary with `replicas` replicas, monitored as `service` by `sentinels` Sentinels, `quorum` of
    which must agree that it is down (after `down_after_ms`) for a failover."""

    def __init__(
        self,
        service: str = "chip",
        replicas: int = 2,
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        timeout: float = START_TIMEOUT,
    ):
        super().__init__("chip-test-sentinel-", timeout)
        self.service = service
        ports = self._ports(1 + replicas + sentinels)
        replica = [*DATA_CONFIG, f"replicaof {HOST} {ports[0]}"]
        self.data_servers = [
            self._add(f"redis-{port}", port, replica if i else DATA_CONFIG)
            for i, port in enumerate(ports[: 1 + replicas])
        ]
        monitor = [
            f"sentinel monitor {service} {HOST} {ports[0]} {quorum}",
            f"sentinel down-after-milliseconds {service} {down_after_ms}",
            f"sentinel failover-timeout {service} {failover_timeout_ms}",
            f"sentinel parallel-syncs {service} {replicas}",
        ]
        self.sentinels = [self._add(f"sentinel-{port}", port, monitor, sentinel=True) for port in ports[1 + replicas :]]

    @property
    def url(self) -> str:
        """chip's form: valkey+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/<service>/0."""
        return f"valkey+sentinel://{','.join(f'{HOST}:{s.port}' for s in self.sentinels)}/{self.service}/0"

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [sentinel.address for sentinel in self.sentinels]

    def client(self, **kwargs) -> redis.asyncio.sentinel.Sentinel:
        """A plain redis-py asyncio Sentinel on the three Sentinels (master_for(service) for the primary)."""
        return redis.asyncio.sentinel.Sentinel(self.sentinel_addresses, **kwargs)

    def _start(self):
        for server in self.data_servers:
            self._run(server)
        for server in self.data_servers:
            server.wait_ready(self.timeout)
        # Sentinels learn the replicas from the primary's INFO, which they read every 10 s: they
        # start once the replicas are there to be seen
        self._wait(
            "replicas in sync with the primary",
            lambda: all(server.role()[3] == "connected" for server in self.data_servers[1:]),
        )
        for server in self.sentinels:
            self._run(server)
        for server in self.sentinels:
            server.wait_ready(self.timeout)
        self.wait_settled()

    def _announced(self) -> Server | None:
        """The data server every live Sentinel names as the primary, if they agree."""
        ports = set()
        for sentinel in self._live(self.sentinels):
            with sentinel.client() as client:
                address = client.sentinel_get_master_addr_by_name(self.service)
            if not address:
                return None
            ports.add(int(address[1]))
        return next((server for server in self.data_servers if {server.port} == ports), None)

    def _settled(self) -> Server | None:
        """The primary, once every live Sentinel names it, it answers as one, every other live data
        server replicates it in sync, and every Sentinel sees those replicas and the other Sentinels."""
        primary = self._announced()
        if primary is None or not primary.alive or primary.role()[0] != "master":
            return None
        replicas = [server for server in self._live(self.data_servers) if server is not primary]
        for role in (server.role() for server in replicas):
            if role[0] != "slave" or int(role[2]) != primary.port or role[3] != "connected":
                return None
        for sentinel in self._live(self.sentinels):
            with sentinel.client() as client:
                master = client.sentinel_master(self.service)
                seen = {
                    int(r["port"])
                    for r in client.sentinel_slaves(self.service)
                    if not (r["is_sdown"] or r["is_disconnected"])
                }
            if (
                "failover" in master["flags"]
                or master["is_sdown"]
                or seen != {r.port for r in replicas}
                or master["num-other-sentinels"] < len(self.sentinels) - 1
            ):
                return None
        return primary

    def wait_settled(self, timeout: float | None = None) -> Server:
        return self._wait("Sentinels agreeing on a primary whose replicas are in sync", self._settled, timeout)

    def primary(self) -> Server:
        return self.wait_settled()

    def replicas(self) -> list[Server]:
        primary = self.primary()
        return [server for server in self._live(self.data_servers) if server is not primary]

    def failover(self, timeout: float = FAILOVER_TIMEOUT) -> Server:
        """SENTINEL FAILOVER (retried while a Sentinel answers INPROG or NOGOODSLAVE); the new primary,
        once settled: the old one demoted to its replica, which Sentinel does some seconds later."""
        old = self.primary()

        def accepted():
            with self._live(self.sentinels)[0].client() as client:
                return client.execute_command("SENTINEL", "FAILOVER", self.service)

        self._wait(f"a Sentinel accepting SENTINEL FAILOVER {self.service}", accepted, timeout)
        return self.wait_failover(old, timeout)

    def kill_primary(self) -> Server:
        """SIGKILL the primary; the killed server (no replica has taken over yet)."""
        primary = self.primary()
        primary.kill()
        return primary

    def wait_failover(self, old: Server, timeout: float = FAILOVER_TIMEOUT) -> Server:
        """Wait until the Sentinels announce a primary other than `old` and all is settled; that primary."""
        return self._wait(
            f"Sentinels announcing a new primary in place of port {old.port}",
            lambda: (primary := self._settled()) is not old and primary,
            timeout,
        )

    def heal(self):
        """Restart every killed server (a data server as the current primary's replica) and wait
        until settled."""
        primary = self.primary()
        for server in self.servers:
            if not server.alive:
                self._run(server, *([] if server.sentinel else ["--replicaof", HOST, str(primary.port)]))
                server.wait_ready(self.timeout)
        self.wait_settled()

    def flush(self):
        with self.primary().client() as client:
            client.flushall()
