"""The loop-lag probe and the query count: what an operator (and `make bench`) reads in /metrics to
see a stalled loop and what a resume costs the database."""

import asyncio
import time

from prometheus_client import CollectorRegistry, Histogram

from services.looplag import LoopLag
from services.metrics import LAG_BUCKETS


def observed_above(histogram_registry: CollectorRegistry, name: str, bound: float) -> float:
    total = histogram_registry.get_sample_value(f"{name}_count")
    within = histogram_registry.get_sample_value(f"{name}_bucket", {"le": str(bound)})
    return total - within


async def test_a_stalled_loop_shows_in_the_lag_histogram():
    registry = CollectorRegistry()
    histogram = Histogram("lag_seconds", "", buckets=LAG_BUCKETS, registry=registry)
    probe = LoopLag(histogram, period=0.01)
    probe.start()
    await asyncio.sleep(0.1)
    assert observed_above(registry, "lag_seconds", 0.05) == 0  # an idle loop is on time
    time.sleep(0.15)  # what a long pipeline's parsing would do to every socket
    await asyncio.sleep(0.05)
    probe.stop()
    assert observed_above(registry, "lag_seconds", 0.1) == 1
    count = registry.get_sample_value("lag_seconds_count")
    await asyncio.sleep(0.05)
    assert registry.get_sample_value("lag_seconds_count") == count  # stopped: no timer left


async def test_a_resume_counts_its_database_queries(start_chip, bound, channel):
    server = await start_chip()
    visitor = await bound(server, channel)
    registry = server.services.metrics.registry
    before = registry.get_sample_value("chip_db_queries_total")
    visitor.close()
    await bound(server, channel, visitor.chat_id)
    assert registry.get_sample_value("chip_db_queries_total") > before
    await asyncio.sleep(0.1)
    assert registry.get_sample_value("chip_loop_lag_seconds_count") > 0  # the running chip probes its loop
