"""The Redis topologies the tests run on; they live in demo/topologies, which the benchmark uses too
(bench/ does not import tests/)."""

from demo.topologies import (
    FAILOVER_TIMEOUT,
    START_TIMEOUT,
    Cluster,
    Sentinel,
    Server,
    TopologyError,
    TopologyTimeout,
    topology_binary,
    unsupported,
)

__all__ = [
    "Cluster",
    "Sentinel",
    "Server",
    "TopologyError",
    "TopologyTimeout",
    "START_TIMEOUT",
    "FAILOVER_TIMEOUT",
    "topology_binary",
    "unsupported",
]
