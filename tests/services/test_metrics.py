"""The Prometheus endpoint: chip started as operators start it, with --metrics-port, then scraped."""

import math

from tornado.httpclient import AsyncHTTPClient
from tornado.testing import bind_unused_port

from services.config import parse
from services.delivery.sessions import Registry
from services.metrics import Metrics
from services.store.client import connect


def free_port() -> int:
    sock, port = bind_unused_port()
    sock.close()
    return port


def sample(text: str, name: str) -> float:
    """The value of an unlabelled sample in the exposition text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_metrics_count_a_chat_cycle(chip_process, http, connect, channel, courier):
    metrics_port = free_port()
    process = await chip_process("--metrics-port", str(metrics_port), "--log-level", "warning").ready(http)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    client = AsyncHTTPClient()
    before = (await client.fetch(metrics_url)).body.decode()
    assert sample(before, "chip_messages_queued_total") == 0
    assert sample(before, "chip_open_sockets") == 0

    visitor = await connect(process, channel["uuid"])
    chat_id = (await visitor.start())["chat_id"]
    await client.fetch(f"{process.url}/wc/send/{channel['uuid']}/", method="POST",
                       body=f'{{"chat_id": "{chat_id}", "secret": "sesame", '
                            '"msg": {"id": 7, "text": "hi", "origin": "flow"}}')
    assert (await visitor.expect("chat_out"))["msg_out"]["id"] == 7
    text = (await client.fetch(metrics_url)).body.decode()
    assert sample(text, "chip_outbox_depth") == 1 and sample(text, "chip_outboxes_waiting") == 1
    await visitor.send({"type": "ack_chat", "msg_id": 7})
    await courier.wait_for(lambda: courier.of_type("msg_status", chat_id))

    text = (await client.fetch(metrics_url)).body.decode()
    assert sample(text, "chip_open_sockets") == 1 and sample(text, "chip_bound_chats") == 1
    for name in ("queued", "pushed", "acked"):
        assert sample(text, f"chip_messages_{name}_total") == 1, name
    assert sample(text, "chip_messages_retried_total") == 0
    assert sample(text, "chip_outbox_depth") == 0 and sample(text, "chip_outboxes_waiting") == 0
    assert sample(text, "chip_delivery_seconds_count") == 1
    assert sample(text, "chip_courier_request_seconds_count") >= 2  # chat_started, then msg_status


def test_metrics_port_is_off_by_default():
    assert parse([], {}).metrics_port == 0
    assert parse([], {"CHIP_METRICS_PORT": "9102"}).metrics_port == 9102


async def test_outbox_figures_are_unknown_while_redis_does_not_answer():
    """NaN, not the last scrape's figures passed off as current; the process's own figures still show."""
    metrics = Metrics()
    redis = connect(f"redis://127.0.0.1:{free_port()}/0")
    metrics.watch(Registry(), redis)
    try:
        text = (await metrics.scrape()).decode()
    finally:
        await redis.aclose()
    assert math.isnan(sample(text, "chip_outbox_depth")) and math.isnan(sample(text, "chip_outboxes_waiting"))
    assert sample(text, "chip_open_sockets") == 0 and sample(text, "chip_bound_chats") == 0
