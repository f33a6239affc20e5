"""Writes that replicas have confirmed (--valkey-min-replicas): WAIT on the connection that made them.

WAIT counts the replicas that have every write *of the connection it is sent on*; a connection
that wrote nothing gets every replica's count at once. With a pool, a WAIT sent on its own may go
out on another connection than the write, and vouch for nothing. So the WAIT goes last in the
writes' own pipeline: redis-py sends a pipeline on one connection (for a cluster, one per node),
and the WAIT covers every write before it on that connection, a whole batch of scripts with one
WAIT.
"""

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster

from services.errors import Unavailable

# how long a write waits for its replicas before chip answers 503 (Courier, or the widget, retries):
# well under the client's 5 s socket timeout, which bounds the wait for WAIT's own answer
REPLICA_WAIT = 2.0


async def replicated(redis, pipe: Pipeline | ClusterPipeline, key, replicas: int, timeout: float) -> list:
    """Execute `pipe` (writes to `key`, or to keys of its slot, of `redis`) and return what each of its
    commands answered, a failed command's exception among them (as execute(raise_on_error=False)).

    Unavailable if fewer than `replicas` replicas confirmed the writes within `timeout` seconds (they
    are made all the same: the caller answers 503 and the client retries, so the writes must be ones
    that may be made twice). Keep `timeout` under the client's socket timeout, which bounds the wait
    for WAIT's answer. With `replicas` 0 the pipeline runs as it is.
    """
    if not replicas:
        return await pipe.execute(raise_on_error=False)
    if timeout <= 0:
        raise ValueError("WAIT's timeout must be more than 0 (0 would wait for ever)")
    wait = ("WAIT", replicas, max(1, round(timeout * 1000)))
    if isinstance(redis, RedisCluster):
        await redis.initialize()  # the slot map, built on first use
        node = redis.get_node_from_key(key)
        pipe.execute_command(*wait, target_nodes=node)
    else:
        node = None
        pipe.execute_command(*wait)
    *results, confirmed = await pipe.execute(raise_on_error=False)
    if node is not None and redis.get_node_from_key(key).name != node.name:
        # the slot moved meanwhile: redis-py made the writes again on its new node, on another
        # connection than the WAIT's (an ASK, while a slot migrates, leaves the map as it was and
        # is not seen here)
        raise Unavailable(f"the node of {key!r} changed while its writes were confirmed")
    if isinstance(confirmed, Exception):
        raise Unavailable(f"replicas could not be asked to confirm writes: {confirmed}") from confirmed
    if confirmed < replicas:
        raise Unavailable(
            f"{confirmed} of the {replicas} replica(s) asked for confirmed the writes within {timeout:g} s"
        )
    return results
