"""Redis topologies the tests and the benchmark start from a real redis-server binary, all on loopback ports of their own:

- `Cluster`: three primaries with a replica each (Redis Cluster), slots assigned with redis-py;
- `Sentinel`: a primary with two replicas, watched by three Sentinels that monitor it as "chip";
- `Single`: one server (the benchmark's own, when it is given none).

Each keeps its servers' files in a temporary folder, ends every process it started by PID in `stop()`
(also when `start()` fails midway) and bounds every wait, raising `TopologyTimeout` with what it was
waiting for. Starting, stopping and the failure operations block: an async test that keeps chip
serving meanwhile calls them through `asyncio.to_thread`.
"""

from demo.topologies.base import (
    FAILOVER_TIMEOUT,
    START_TIMEOUT,
    Server,
    TopologyError,
    TopologyTimeout,
    topology_binary,
    unsupported,
)
from demo.topologies.cluster import Cluster
from demo.topologies.sentinel import Sentinel
from demo.topologies.single import Single

__all__ = [
    "Cluster",
    "Sentinel",
    "Single",
    "Server",
    "TopologyError",
    "TopologyTimeout",
    "START_TIMEOUT",
    "FAILOVER_TIMEOUT",
    "topology_binary",
    "unsupported",
]
