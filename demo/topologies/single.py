"""One redis-server of its own on a free loopback port: what the benchmark measures chip against
when no server is named, so that its counters count chip's work and nothing else's."""

from demo.topologies.base import DATA_CONFIG, START_TIMEOUT, Topology


class Single(Topology):
    def __init__(self, timeout: float = START_TIMEOUT):
        super().__init__("chip-single-", timeout)
        self.server = self._add("server", self._ports(1)[0], DATA_CONFIG)

    @property
    def url(self) -> str:
        host, port = self.server.address
        return f"redis://{host}:{port}/0"

    def flush(self):
        with self.server.client() as client:
            client.flushall()

    def _start(self):
        self._run(self.server)
        self.server.wait_ready(self.timeout)
