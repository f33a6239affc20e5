"""Prometheus metrics of one chip process, for operators to scrape from --metrics-port.

Each Metrics owns its CollectorRegistry rather than using prometheus-client's global one, so a
test can build several apps in one process without their counters colliding. Gauges that
describe state (readiness, the stores, sockets, chats, outbox depth, the Courier backlog) are read
when scraped, not kept up to date on the hot path: a custom collector (StateCollector) yields them
from what one refresh read just before. The rules and the dashboard that read them are
in deploy/prometheus/ and deploy/grafana/.
"""

import asyncio
import logging
import math

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from services.store import indexes, keys

logger = logging.getLogger(__name__)

# delivery is a few milliseconds when all is well, and up to the ack timeout and beyond when not
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300)
# and up to Courier's own 30 s limit when Courier is slow
COURIER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30)
# a loop that keeps up is late by well under a millisecond; a stall of 100 ms is felt by every socket
LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
# a database that served a query this recently answers; only an idle process asks it anew
DB_FRESH = 15.0
# the question asked then: longer, and a scrape would outlast Prometheus's own 10 s timeout
DB_PROBE_TIMEOUT = 2.0

# every label value the counters below take, exported at 0 from the start: Prometheus's increase()
# sees nothing of a series whose first sample is already 1, so an alert would miss the first give-up
COURIER_OUTCOMES = ("failed", "refused", "rejected")
GIVEN_UP_REASONS = ("rejected", "expired", "too_large", "channel_gone", "status_rejected", "status_expired")
GIVEN_UP_STATUSES = ("sent", "failed")


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # process_open_fds and process_max_fds: a socket per visitor, against the descriptor limit
        ProcessCollector(registry=r)
        self.state = StateCollector()
        r.register(self.state)
        self.queued = Counter("chip_messages_queued", "messages from Courier queued (repeats excluded)", registry=r)
        self.pushed = Counter("chip_messages_pushed", "first pushes of a message to a socket", registry=r)
        self.retried = Counter("chip_messages_retried", "pushes again of a message not acked in time", registry=r)
        self.acked = Counter("chip_messages_acked", "messages acked by a widget and removed", registry=r)
        self.failed = Counter(
            "chip_messages_failed", "messages a socket stopped being pushed after the last attempt", registry=r
        )
        self.given_up = Counter(
            "chip_messages_given_up",
            "messages that waited --msg-expiry for their visitor and left the outbox: "
            "status sent (emailed) or failed (reported failed to Courier)",
            ["status"],
            registry=r,
        )
        self.delivery = Histogram(
            "chip_delivery_seconds", "from queueing a message to its ack", buckets=DELIVERY_BUCKETS, registry=r
        )
        self.courier_latency = Histogram(
            "chip_courier_request_seconds", "Courier receive requests", buckets=COURIER_BUCKETS, registry=r
        )
        self.courier_errors = Counter(
            "chip_courier_errors",
            "Courier requests not handled: failed (5xx, no answer), refused (a 400 "
            "that is retried) or rejected (a 4xx that is not)",
            ["outcome"],
            registry=r,
        )
        self.courier_given_up = Counter(
            "chip_courier_events_given_up",
            "events never handed to Courier: rejected, expired (retried "
            "for --inbound-expiry), too_large (over Courier's body limit alone), "
            "channel_gone, status_rejected (a msg_status Courier refused for good) "
            "or status_expired (refused for --status-expiry)",
            ["reason"],
            registry=r,
        )
        for counter, values in (
            (self.courier_errors, COURIER_OUTCOMES),
            (self.courier_given_up, GIVEN_UP_REASONS),
            (self.given_up, GIVEN_UP_STATUSES),
        ):
            for value in values:
                counter.labels(value)
        self.dead_letters = Counter(
            "chip_dead_letters",
            "dead letters kept in Redis (chip.py admin dead-letters), by "
            "reason: the reasons of chip_courier_events_given_up, and msg_expired (an "
            "outgoing message reported failed after --msg-expiry)",
            ["reason"],
            registry=r,
        )
        self.dead_letters_dropped = Counter(
            "chip_dead_letters_dropped",
            "dead letters dropped, oldest first, to keep within --dead-letter-max and --dead-letter-max-per-channel",
            registry=r,
        )
        for value in GIVEN_UP_REASONS + ("msg_expired",):
            self.dead_letters.labels(value)
        self.loop_lag = Histogram(
            "chip_loop_lag_seconds",
            "how late the event loop ran a timer that was due (services/looplag.py)",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.db_queries = Counter("chip_db_queries", "SQL statements sent to PostgreSQL", registry=r)

    def dead_letters_kept(self, reason: str, kept: int, dropped: int):
        """DeadLetters' tally: letters written, and the oldest dropped to make room."""
        self.dead_letters.labels(reason).inc(kept)
        self.dead_letters_dropped.inc(dropped)

    def watch(self, registry, redis, db=None, readiness=None, courier=None):
        """Where the state gauges are read from when scraped: the socket registry, Redis, the
        database, the readiness gate and the Courier queue (its backlog reads)."""
        self.state.watch(registry, redis, db, readiness, courier)

    async def scrape(self) -> bytes:
        """The text exposition format, with the state gauges read now: prometheus-client collects
        synchronously, so what is read from the stores is read first, then collected."""
        await self.state.refresh()
        return generate_latest(self.registry)


# the state gauges, by name: (help, label names)
STATE_GAUGES = {
    "chip_ready": ("1 while this process serves (GET /ready answers 200), 0 while it starts or stops", ()),
    "chip_store_up": ("1 when the store answered at this scrape, 0 when it did not: redis or postgresql", ("store",)),
    "chip_open_sockets": ("WebSockets open in this process", ()),
    "chip_bound_chats": ("chats with at least one socket in this process", ()),
    "chip_outbox_depth": ("messages waiting for an ack in the outboxes of this process's chats", ()),
    "chip_outboxes_waiting": ("chats (of all processes) with messages waiting", ()),
    "chip_courier_chats_waiting": ("chats (of all processes) with visitors' events waiting for Courier", ()),
    "chip_courier_oldest_event_seconds": (
        "age of the oldest event waiting for Courier (0: none), among the chats due soonest: exact while 1024 "
        "or fewer wait",
        (),
    ),
}
# the state gauges read from Redis: NaN while it does not answer
REDIS_FIGURES = (
    "chip_outbox_depth",
    "chip_outboxes_waiting",
    "chip_courier_chats_waiting",
    "chip_courier_oldest_event_seconds",
)


class StateCollector(Collector):
    """The state gauges, computed when collected, as prometheus-client has custom collectors do.
    collect() is synchronous and the stores are read asynchronously, so refresh() reads them first
    into a snapshot: the database probe, and Redis in one pipeline (the outboxes of this process's
    chats, the outbox and Courier indexes' shards); collect() yields that snapshot with what this
    process knows at once (readiness, its sockets and chats). describe() reads nothing."""

    def __init__(self):
        self._registry = self._redis = self._db = self._readiness = self._courier = None
        self._stores: dict[str, float] = {}  # chip_store_up by store, of the stores watched
        self._figures = dict.fromkeys(REDIS_FIGURES, 0.0)

    def watch(self, registry, redis, db, readiness, courier):
        self._registry, self._redis, self._db = registry, redis, db
        self._readiness, self._courier = readiness, courier

    async def refresh(self):
        stores = {}
        if self._db is not None:
            stores["postgresql"] = 1.0 if await self._db_answers() else 0.0
        figures = self._figures
        if self._registry is not None:
            figures = await self._read_redis()
            stores["redis"] = 0.0 if figures is None else 1.0
            # unknown, not the last scrape's figures passed off as current
            figures = figures or dict.fromkeys(REDIS_FIGURES, math.nan)
        # swapped whole, so that a collect between two scrapes' refreshes sees one or the other
        self._stores, self._figures = stores, figures

    async def _read_redis(self) -> dict[str, float] | None:
        """REDIS_FIGURES as Redis holds them now, or None if it did not answer."""
        chats = self._registry.chats()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in chats:
                    pipe.zcard(keys.outbox_order(key))
                indexes.ask_count(pipe, keys.outboxes)
                asked = self._courier.ask_backlog(pipe) if self._courier is not None else 0
                replies = await pipe.execute()
            depths, rest = replies[: len(chats)], replies[len(chats) :]
            waiting, asked_backlog = sum(rest[: keys.SHARDS]), rest[keys.SHARDS :]
            backlog = await self._courier.backlog_of(asked_backlog) if asked else (0, 0.0)
        except (RedisError, OSError) as e:
            logger.warning("redis not read for /metrics: %s", e)
            return None
        return dict(zip(REDIS_FIGURES, (sum(depths), waiting, *backlog), strict=True))

    async def _db_answers(self) -> bool:
        if self._db.answered_within(DB_FRESH):
            return True
        try:
            await asyncio.wait_for(self._db.check(), DB_PROBE_TIMEOUT)
        except Exception:  # noqa: BLE001 - whatever the driver raises, the database did not answer
            return False
        return True

    def describe(self):
        for name, (text, labels) in STATE_GAUGES.items():
            yield GaugeMetricFamily(name, text, labels=labels)

    def collect(self):
        live = {
            "chip_ready": 1.0 if self._readiness is not None and self._readiness.ready else 0.0,
            "chip_open_sockets": self._registry.open_count if self._registry is not None else 0,
            "chip_bound_chats": len(self._registry.chats()) if self._registry is not None else 0,
            **self._figures,
        }
        for name, (text, labels) in STATE_GAUGES.items():
            if labels:
                family = GaugeMetricFamily(name, text, labels=labels)
                for store, value in self._stores.items():
                    family.add_metric([store], value)
            else:
                family = GaugeMetricFamily(name, text, value=live[name])
            yield family
