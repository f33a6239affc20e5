"""The Redis chip runs against in a benchmark, by topology, and what it costs there.

- single: a redis-server started here, or the server and database CHIP_BENCH_VALKEY names (shared
  with whatever else uses that server: its counters are then the whole server's);
- cluster: three primaries with a replica each, started here on free loopback ports;
- sentinel: a primary with two replicas under three Sentinels, started here.

The started topologies are ended by PID in `stop()`. Redis round trips and CPU are counted on the
primaries only (INFO stats total_commands_processed, INFO cpu used_cpu_user + used_cpu_sys): a
replica's work is the same again per replica, and a Sentinel's is independent of the load.
"""

import redis

from demo.topologies import Cluster, Sentinel, Single
from services.store import keys

TOPOLOGIES = ("single", "cluster", "sentinel")


class Store:
    def __init__(self, topology: str, single_url: str | None):
        self.kind = topology
        self.topology = None
        self.own_commands = 0  # what counters() and waiting() sent: not chip's work
        if topology == "cluster":
            self.topology = Cluster().start()
            first = self.topology.nodes[0]
            self.url = self.topology.url
            self.client = redis.RedisCluster(host=first.address[0], port=first.port)
        elif topology == "sentinel":
            self.topology = Sentinel().start()
            self.url = self.topology.url
            self.client = self.topology.primary().client(decode=False)
        else:
            if single_url is None:
                self.topology = Single().start()
                single_url = self.topology.url
            self.url = single_url
            self.client = redis.Redis.from_url(single_url)

    def _primaries(self) -> list:
        if self.kind == "cluster":
            return [node.client() for node in self.topology.primaries()]
        if self.kind == "sentinel":
            return [self.topology.primary().client()]
        if self.topology is not None:
            return [self.topology.server.client()]
        return [redis.Redis.from_url(self.url)]

    def counters(self) -> tuple[float, int]:
        """CPU seconds and commands processed so far, summed over the primaries; the benchmark's own
        commands (these INFOs, the outbox counts) left out."""
        cpu, commands = 0.0, 0
        primaries = self._primaries()
        self.own_commands += 2 * len(primaries)
        for client in primaries:
            with client:
                info = client.info("cpu")
                cpu += info["used_cpu_sys"] + info["used_cpu_user"]
                commands += client.info("stats")["total_commands_processed"]
        return cpu, commands - self.own_commands

    def commandstats(self) -> dict:
        """Calls so far per command (INFO commandstats), summed over the primaries; this call's own
        INFO is left out by the caller's difference of two readings."""
        calls = {}
        for client in self._primaries():
            with client:
                for name, stats in client.info("commandstats").items():
                    command = name.removeprefix("cmdstat_")
                    calls[command] = calls.get(command, 0) + stats["calls"]
        self.own_commands += len(self._primaries())
        return calls

    def waiting(self) -> int:
        """Chats with messages waiting for an ack, over every shard's outboxes index."""
        pipe = self.client.pipeline(transaction=False)
        for n in range(keys.SHARDS):
            pipe.zcard(keys.outboxes(n))
        self.own_commands += keys.SHARDS
        return sum(pipe.execute())

    def flush(self):
        if self.topology is None:
            self.client.flushdb()
        else:
            self.topology.flush()

    def stop(self):
        self.client.close()
        if self.topology is not None:
            self.topology.stop()
