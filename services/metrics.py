"""Prometheus metrics of one chip process, for operators to scrape from --metrics-port.

Each Metrics owns its CollectorRegistry rather than using prometheus-client's global one, so a
test can build several apps in one process without their counters colliding. Gauges that
describe state (sockets, chats, outbox depth) are read when scraped, not kept up to date on the
hot path.
"""

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from redis.exceptions import RedisError

from services.store import indexes, keys

logger = logging.getLogger(__name__)

# delivery is a few milliseconds when all is well, and up to the ack timeout and beyond when not
DELIVERY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15, 60, 300)
# and up to Courier's own 30 s limit when Courier is slow
COURIER_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30)
# a loop that keeps up is late by well under a millisecond; a stall of 100 ms is felt by every socket
LAG_BUCKETS = (.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.open_sockets = Gauge("chip_open_sockets", "WebSockets open in this process", registry=r)
        self.bound_chats = Gauge("chip_bound_chats", "chats with at least one socket in this process",
                                 registry=r)
        self.outbox_depth = Gauge("chip_outbox_depth",
                                  "messages waiting for an ack in the outboxes of this process's chats",
                                  registry=r)
        self.outboxes = Gauge("chip_outboxes_waiting", "chats (of all processes) with messages waiting",
                              registry=r)
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
        self.dead_letters = Counter("chip_dead_letters", "dead letters kept in Redis (chip.py admin dead-letters), by "
                                    "reason: the reasons of chip_courier_events_given_up, and msg_expired (an "
                                    "outgoing message reported failed after --msg-expiry)", ["reason"], registry=r)
        self.dead_letters_dropped = Counter("chip_dead_letters_dropped", "dead letters dropped, oldest first, to keep "
                                            "within --dead-letter-max and --dead-letter-max-per-channel",
                                            registry=r)
        self.loop_lag = Histogram("chip_loop_lag_seconds", "how late the event loop ran a timer that was due "
                                  "(services/looplag.py)", buckets=LAG_BUCKETS, registry=r)
        self.db_queries = Counter("chip_db_queries", "SQL statements sent to PostgreSQL", registry=r)
        self._registry = None
        self._redis = None

    def dead_letters_kept(self, reason: str, kept: int, dropped: int):
        """DeadLetters' tally: letters written, and the oldest dropped to make room."""
        self.dead_letters.labels(reason).inc(kept)
        self.dead_letters_dropped.inc(dropped)

    def watch(self, registry, redis):
        """Where the state gauges are read from when scraped: the socket registry and Redis."""
        self._registry = registry
        self._redis = redis

    async def scrape(self) -> bytes:
        """The text exposition format, with the state gauges read now."""
        if self._registry is not None:
            self.open_sockets.set(self._registry.open_count)
            chats = self._registry.chats()
            self.bound_chats.set(len(chats))
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key in chats:
                        pipe.zcard(keys.outbox_order(key))
                    depths = await pipe.execute()
                waiting = await indexes.count(self._redis, keys.outboxes)
                self.outbox_depth.set(sum(depths))
                self.outboxes.set(waiting)
            except (RedisError, OSError) as e:
                logger.warning("outbox depth not read: %s", e)
                # unknown, not the last scrape's figures passed off as current
                self.outbox_depth.set(float("nan"))
                self.outboxes.set(float("nan"))
        return generate_latest(self.registry)
