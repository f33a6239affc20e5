"""The Prometheus endpoint: chip started as operators start it, with --metrics-port, then scraped."""

import asyncio
import math

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient
from tornado.testing import bind_unused_port

from services.backoff import Backoff
from services.config import parse
from services.delivery.sessions import Registry
from services.metrics import Metrics
from services.store import keys
from services.store.client import connect


def free_port() -> int:
    sock, port = bind_unused_port()
    sock.close()
    return port


def sample(text: str, name: str, **labels) -> float:
    """The value of the sample `name` with exactly these labels in the exposition text."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    raise AssertionError(f"{name}{labels or ''} not in /metrics")


async def scrape(port: int) -> str:
    return (await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/metrics")).body.decode()


async def test_metrics_count_a_chat_cycle(chip_process, http, connect, channel, courier):
    metrics_port = free_port()
    process = await chip_process("--metrics-port", str(metrics_port), "--log-level", "warning").ready(http)
    client = AsyncHTTPClient()
    before = await scrape(metrics_port)
    assert sample(before, "chip_messages_queued_total") == 0
    assert sample(before, "chip_open_sockets") == 0

    visitor = await connect(process, channel["uuid"])
    chat_id = (await visitor.start())["chat_id"]
    await client.fetch(
        f"{process.url}/wc/send/{channel['uuid']}/",
        method="POST",
        body=f'{{"chat_id": "{chat_id}", "secret": "sesame", "msg": {{"id": 7, "text": "hi", "origin": "flow"}}}}',
    )
    assert (await visitor.expect("chat_out"))["msg_out"]["id"] == 7
    text = await scrape(metrics_port)
    assert sample(text, "chip_outbox_depth") == 1
    await visitor.send({"type": "ack_chat", "msg_id": 7})
    await courier.wait_for(lambda: courier.of_type("msg_status", chat_id))

    text = await scrape(metrics_port)
    assert sample(text, "chip_open_sockets") == 1 and sample(text, "chip_bound_chats") == 1
    for name in ("queued", "pushed", "acked"):
        assert sample(text, f"chip_messages_{name}_total") == 1, name
    assert sample(text, "chip_messages_retried_total") == 0
    assert sample(text, "chip_outbox_depth") == 0
    assert sample(text, "chip_delivery_seconds_count") == 1
    assert sample(text, "chip_courier_request_seconds_count") >= 2  # chat_started, then msg_status
    assert sample(text, "chip_courier_chats_waiting") == 0 and sample(text, "chip_courier_oldest_event_seconds") == 0


async def test_readiness_the_stores_and_descriptors_are_exported(chip_process, spare_redis, http):
    """What the alert rules (deploy/prometheus/chip-alerts.yml) read: a process waiting for Redis is
    not ready and says which store does not answer, and its descriptors are counted against the limit."""
    spare_redis.stop()
    metrics_port = free_port()
    process = await chip_process("--valkey", spare_redis.url, "--metrics-port", str(metrics_port)).ready(http, "/")
    text = await scrape(metrics_port)
    assert sample(text, "chip_ready") == 0
    assert sample(text, "chip_store_up", store="redis") == 0
    assert sample(text, "chip_store_up", store="postgresql") == 1
    assert 0 < sample(text, "process_open_fds") < sample(text, "process_max_fds")

    spare_redis.start()
    await process.ready(http, timeout=10)
    text = await scrape(metrics_port)
    assert sample(text, "chip_ready") == 1
    assert sample(text, "chip_store_up", store="redis") == 1
    assert sample(text, "chip_store_up", store="postgresql") == 1


async def test_the_courier_backlog_counts_chats_and_ages_until_courier_takes_them(start_chip, bound, channel, courier):
    server = await start_chip(retry={"courier": Backoff(0.2, 0.5), "tick": 0.1})
    courier.fail_with = 503
    visitor = await bound(server, channel)
    await visitor.send({"type": "send_msg", "text": "anyone there?"})
    await asyncio.sleep(0.5)
    first = (await server.services.metrics.scrape()).decode()
    assert sample(first, "chip_courier_chats_waiting") == 1
    await asyncio.sleep(0.3)
    later = (await server.services.metrics.scrape()).decode()
    age = sample(later, "chip_courier_oldest_event_seconds")
    assert age >= sample(first, "chip_courier_oldest_event_seconds") + 0.25 and age < 10
    assert sample(later, "chip_courier_errors_total", outcome="failed") >= 1

    courier.fail_with = 0
    await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
    for _ in range(50):
        text = (await server.services.metrics.scrape()).decode()
        if sample(text, "chip_courier_chats_waiting") == 0:
            break
        await asyncio.sleep(0.05)
    assert sample(text, "chip_courier_chats_waiting") == 0 and sample(text, "chip_courier_oldest_event_seconds") == 0


def test_metrics_port_is_off_by_default():
    assert parse([], {}).metrics_port == 0
    assert parse([], {"CHIP_METRICS_PORT": "9102"}).metrics_port == 9102


def test_every_give_up_and_courier_error_is_exported_at_zero_before_the_first():
    """Prometheus's increase() counts nothing for a series that appears at 1: the alert on events
    given up would miss the first one unless the series was there, at 0, before it."""
    text = generate_latest(Metrics().registry).decode()
    for reason in ("rejected", "expired", "too_large", "channel_gone", "status_rejected", "status_expired"):
        assert sample(text, "chip_courier_events_given_up_total", reason=reason) == 0, reason
    for status in ("sent", "failed"):
        assert sample(text, "chip_messages_given_up_total", status=status) == 0, status
    for outcome in ("failed", "refused", "rejected"):
        assert sample(text, "chip_courier_errors_total", outcome=outcome) == 0, outcome


async def test_outbox_figures_are_unknown_while_redis_does_not_answer():
    """NaN, not the last scrape's figures passed off as current; the process's own figures still show."""
    metrics = Metrics()
    redis = connect(f"redis://127.0.0.1:{free_port()}/0")
    metrics.watch(Registry(), redis, None, None, None)
    try:
        text = (await metrics.scrape()).decode()
    finally:
        await redis.aclose()
    assert math.isnan(sample(text, "chip_outbox_depth")) and math.isnan(sample(text, "chip_outboxes_waiting"))
    assert sample(text, "chip_open_sockets") == 0 and sample(text, "chip_bound_chats") == 0


class Sockets:
    """A socket registry's counts, as the state gauges read them."""

    open_count = 3

    def chats(self) -> list[str]:
        return ["chat:a", "chat:b"]


async def test_a_scrape_reads_redis_in_one_round_trip(services, redis_url, store):
    """The outboxes of this process's chats, the outbox index and the Courier backlog share one
    pipeline: a scrape costs one round trip however many chats and shards there are."""
    store.zadd(keys.outbox_order("chat:a"), {"m1": 1, "m2": 2})
    store.zadd(keys.outbox_order("chat:b"), {"m3": 3})
    store.zadd(keys.outboxes(5), {"chat:a": 1})
    store.zadd(keys.outboxes(9), {"chat:b": 1})
    redis, trips = connect(redis_url), []
    pipeline = redis.pipeline

    def counted(*args, **kwargs):
        pipe = pipeline(*args, **kwargs)
        execute = pipe.execute

        async def executed(*a, **kw):
            trips.append(len(pipe.command_stack))
            return await execute(*a, **kw)

        pipe.execute = executed
        return pipe

    async def command(*args, **kwargs):
        trips.append(args[0])
        raise AssertionError(f"{args[0]} sent alone")

    redis.pipeline, redis.execute_command = counted, command
    metrics = Metrics()
    metrics.watch(Sockets(), redis, None, None, services.courier_queue)
    try:
        text = (await metrics.scrape()).decode()
    finally:
        await redis.aclose()
    assert trips == [2 + 3 * keys.SHARDS]
    assert sample(text, "chip_store_up", store="redis") == 1
    assert sample(text, "chip_outbox_depth") == 3 and sample(text, "chip_outboxes_waiting") == 2
    assert sample(text, "chip_open_sockets") == 3 and sample(text, "chip_bound_chats") == 2
    assert sample(text, "chip_courier_chats_waiting") == 0 and sample(text, "chip_courier_oldest_event_seconds") == 0


def test_describing_the_state_gauges_reads_nothing():
    """The registry describes a collector when it is registered, before chip has stores to read: the
    names and help are there, and nothing is read or asked."""

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"{name} read to describe")

    metrics = Metrics()
    metrics.watch(Untouchable(), Untouchable(), Untouchable(), Untouchable(), Untouchable())
    described = {family.name: family for family in metrics.state.describe()}
    assert set(described) == {
        "chip_ready",
        "chip_store_up",
        "chip_open_sockets",
        "chip_bound_chats",
        "chip_outbox_depth",
        "chip_outboxes_waiting",
        "chip_courier_chats_waiting",
        "chip_courier_oldest_event_seconds",
    }
    assert all(family.type == "gauge" and family.documentation and not family.samples for family in described.values())
