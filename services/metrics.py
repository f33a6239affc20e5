"""Prometheus metrics of one chip process, for operators to scrape from --metrics-port.

Each Metrics owns its CollectorRegistry rather than using prometheus-client's global one, so a
test can build several apps in one process without their counters colliding. Counters and
histograms are kept up to date as things happen; the gauges that describe state (sockets, chats,
outbox depth) are a collector's, computed when scraped and never touched on the hot path.
"""

import logging
import math

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from redis.exceptions import RedisError

from services.store import keys

logger = logging.getLogger(__name__)

# delivery is a few milliseconds when all is well, and up to the ack timeout and beyond when not
DELIVERY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15, 60, 300)
# and up to Courier's own 30 s limit when Courier is slow
COURIER_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30)
# a loop that keeps up is late by well under a millisecond; a stall of 100 ms is felt by every socket
LAG_BUCKETS = (.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5)


class StateGauges:
    """A prometheus-client collector of the state gauges: open sockets and bound chats from the
    process's socket registry, and outbox depth and chats waiting from Redis.

    prometheus-client collects synchronously, and Redis is read asynchronously: so a scrape first
    awaits refresh(), which reads the outboxes of every held chat and every shard's index in one
    pipeline, and collect() then yields the sockets and chats as they are at that moment with the
    Redis figures of that refresh. A refresh that fails leaves them NaN, unknown, rather than
    passing off an older scrape's figures as current.
    """

    def __init__(self, sessions, redis):
        self.sessions = sessions
        self.redis = redis
        self.depth = self.waiting = math.nan

    async def refresh(self):
        """Read the outbox depth of this process's chats and the chats waiting across all processes."""
        chats = self.sessions.chats()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in chats:
                    pipe.zcard(keys.outbox_order(key))
                for number in range(keys.SHARDS):
                    pipe.zcard(keys.outboxes(number))
                counts = await pipe.execute()
        except (RedisError, OSError) as e:
            logger.warning("outbox depth not read: %s", e)
            self.depth = self.waiting = math.nan
            return
        self.depth, self.waiting = sum(counts[:len(chats)]), sum(counts[len(chats):])

    def describe(self):
        """The gauges' names, without reading anything, for the registry's check of duplicates."""
        return self._families(math.nan, math.nan, math.nan, math.nan)

    def collect(self):
        return self._families(self.sessions.open_count, len(self.sessions.chats()), self.depth, self.waiting)

    @staticmethod
    def _families(sockets, chats, depth, waiting) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily("chip_open_sockets", "WebSockets open in this process", value=sockets),
            GaugeMetricFamily("chip_bound_chats", "chats with at least one socket in this process", value=chats),
            GaugeMetricFamily("chip_outbox_depth", "messages waiting for an ack in the outboxes of this process's chats",
                              value=depth),
            GaugeMetricFamily("chip_outboxes_waiting", "chats (of all processes) with messages waiting", value=waiting),
        ]


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.queued = Counter("chip_messages_queued", "messages from Courier queued (repeats excluded)",
                              registry=r)
        self.pushed = Counter("chip_messages_pushed", "first pushes of a message to a socket", registry=r)
        self.retried = Counter("chip_messages_retried", "pushes again of a message not acked in time",
                               registry=r)
        self.acked = Counter("chip_messages_acked", "messages acked by a widget and removed", registry=r)
        self.failed = Counter("chip_messages_failed",
                              "messages a socket stopped being pushed after the last attempt", registry=r)
        self.delivery = Histogram("chip_delivery_seconds", "from queueing a message to its ack",
                                  buckets=DELIVERY_BUCKETS, registry=r)
        self.courier_latency = Histogram("chip_courier_request_seconds", "Courier receive requests",
                                         buckets=COURIER_BUCKETS, registry=r)
        self.courier_errors = Counter("chip_courier_errors",
                                      "Courier requests not handled: failed (5xx, no answer), refused (a 400 "
                                      "that is retried) or rejected (a 4xx that is not)", ["outcome"], registry=r)
        self.courier_given_up = Counter("chip_courier_events_given_up",
                                        "events never handed to Courier: rejected, expired (retried "
                                        "for --inbound-expiry), too_large (over Courier's body limit alone), "
                                        "channel_gone, status_rejected (a msg_status Courier refused for good) "
                                        "or status_expired (refused for --status-expiry)", ["reason"], registry=r)
        self.loop_lag = Histogram("chip_loop_lag_seconds", "how late the event loop ran a timer that was due "
                                  "(services/looplag.py)", buckets=LAG_BUCKETS, registry=r)
        self.db_queries = Counter("chip_db_queries", "SQL statements sent to PostgreSQL", registry=r)
        self.state = None

    def watch(self, sessions, redis):
        """Add the state gauges, read from the socket registry and Redis when scraped."""
        self.state = StateGauges(sessions, redis)
        self.registry.register(self.state)

    async def scrape(self) -> bytes:
        """The text exposition format, with the state gauges read now."""
        if self.state is not None:
            await self.state.refresh()
        return generate_latest(self.registry)
