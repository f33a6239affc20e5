"""The shipped deployment run by the real programs (tests/deploy/deployment.py): Debian's nginx in
front, pip's supervisord running chip's two processes, visitors and Courier going through nginx."""

import asyncio
import json
import os
import shutil
import time

import aiohttp
import pytest

from tests.deploy.deployment import BIN, NGINX, Deployment
from tests.polling import wait_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(NGINX) or not (BIN / "supervisord").exists() or not shutil.which("openssl"),
    reason="needs root, Debian's nginx, pip's supervisor (requirements-dev.txt) and openssl",
)

CHATS = 20
INTERVAL = 0.1  # seconds between two messages to one chat


@pytest.fixture
async def deployment(pg_url, spare_redis, courier):
    deployed = Deployment(pg_url, spare_redis.url, courier.url)
    yield deployed
    deployed.stop()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as client:
        yield client


async def status(session, url) -> int:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as response:
            return response.status
    except (TimeoutError, aiohttp.ClientError):
        return 0


async def all_ready(session, deployment, within: float = 0) -> bool:
    """Whether both chip processes answer 200 at /ready, now or within `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        codes = [await status(session, f"http://127.0.0.1:{port}/ready") for port in deployment.ports]
        if codes == [200, 200] or time.monotonic() >= deadline:
            return codes == [200, 200]
        await asyncio.sleep(0.1)


class Widget:
    """A visitor's widget through nginx: when its socket closes (1001 at a restart) it reconnects at
    once, resumes its chat and acks every message, recording when each arrived."""

    def __init__(self, session, url, chat_id):
        self.session, self.url, self.chat_id = session, url, chat_id
        self.received = []  # (time, msg id) of every chat_out, repeats included
        self.connections = 0

    async def run(self):
        while True:
            try:
                async with self.session.ws_connect(self.url) as ws:
                    await ws.send_json({"type": "start_chat", "chat_id": self.chat_id})
                    async for frame in ws:
                        if frame.type != aiohttp.WSMsgType.TEXT:
                            break
                        event = json.loads(frame.data)
                        if event["type"] == "chat_resumed":
                            self.connections += 1
                        elif event["type"] == "chat_out":
                            self.received.append((time.monotonic(), event["msg_out"]["id"]))
                            await ws.send_json({"type": "ack_chat", "msg_id": event["msg_out"]["id"]})
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.05)

    def first_arrivals(self) -> list:
        seen, firsts = set(), []
        for at, msg_id in self.received:
            if msg_id not in seen:
                seen.add(msg_id)
                firsts.append((at, msg_id))
        return firsts


class Sender:
    """Courier sending to one chat through nginx, a message every INTERVAL: like Courier, it
    retries a message that got a 5xx or no answer, and refuses to go on past a 4xx."""

    def __init__(self, session, url, chat_id, first_id):
        self.session, self.url, self.chat_id = session, url, chat_id
        self.next_id = first_id
        self.sent, self.retries, self.refused = [], 0, []

    async def run(self, stop: asyncio.Event):
        while not stop.is_set():
            body = {
                "chat_id": self.chat_id,
                "secret": "sesame",
                "msg": {"id": self.next_id, "text": f"m{self.next_id}", "origin": "flow"},
            }
            while True:
                try:
                    async with self.session.post(self.url, json=body, timeout=aiohttp.ClientTimeout(total=30)) as r:
                        if r.status == 200:
                            break
                        if r.status < 500:
                            self.refused.append((r.status, await r.text()))
                            return
                except (TimeoutError, aiohttp.ClientError):
                    pass
                self.retries += 1
                await asyncio.sleep(INTERVAL)
            self.sent.append(self.next_id)
            self.next_id += 1
            await asyncio.sleep(INTERVAL)


def test_the_nginx_site_passes_nginx_t(deployment):
    result = deployment.nginx_test()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


async def test_rolling_restart_under_load_loses_nothing_and_keeps_gaps_short(deployment, session, channel, rows):
    deployment.start()
    assert await all_ready(session, deployment, within=15), deployment.ctl("status")
    before = deployment.pids()
    base = f"127.0.0.1:{deployment.https_port}"
    chat_ids = [f"roll{i:02d}".ljust(24, "x") for i in range(CHATS)]
    rows.contacts(channel["org_id"], channel["uuid"], chat_ids)
    widgets = [Widget(session, f"wss://{base}/wc/connect/{channel['uuid']}/", chat_id) for chat_id in chat_ids]
    senders = [
        Sender(session, f"https://{base}/wc/send/{channel['uuid']}/", chat_id, 1000 * (i + 1))
        for i, chat_id in enumerate(chat_ids)
    ]
    widget_tasks = [asyncio.ensure_future(widget.run()) for widget in widgets]
    try:
        assert await wait_until(lambda: all(w.connections for w in widgets), timeout=15)
        stop = asyncio.Event()
        sending = asyncio.gather(*[sender.run(stop) for sender in senders])
        await asyncio.sleep(1)
        restart = await asyncio.get_running_loop().run_in_executor(None, deployment.rolling_restart)
        await asyncio.sleep(1)
        stop.set()
        await sending
        assert restart.returncode == 0, restart.stdout + restart.stderr
        assert await wait_until(
            lambda: all({m for _, m in w.received} >= set(s.sent) for w, s in zip(widgets, senders)), timeout=15
        )
    finally:
        for task in widget_tasks:
            task.cancel()
        await asyncio.gather(*widget_tasks, return_exceptions=True)

    after = deployment.pids()
    assert all(state == "RUNNING" for state, _ in after.values()) and len(after) == 2
    assert all(after[name][1] != before[name][1] for name in before)  # each process really was restarted
    assert [s.refused for s in senders] == [[]] * CHATS
    lost = sum(len(set(s.sent) - {m for _, m in w.received}) for w, s in zip(widgets, senders))
    out_of_order = [w.chat_id for w, s in zip(widgets, senders) if [m for _, m in w.first_arrivals()] != s.sent]
    gaps = [max(b[0] - a[0] for a, b in zip(w.first_arrivals(), w.first_arrivals()[1:])) for w in widgets]
    sent = sum(len(s.sent) for s in senders)
    print(
        f"\nrolling restart under load: {sent} messages to {CHATS} chats, {lost} lost, longest gap "
        f"{max(gaps):.2f} s, {sum(w.connections for w in widgets) - CHATS} reconnections, "
        f"{sum(s.retries for s in senders)} sends retried"
    )
    assert sent >= CHATS * 30
    assert lost == 0 and out_of_order == []
    assert max(gaps) < 3.0, sorted(gaps)
    assert all(w.connections >= 2 for w in widgets)  # every visitor was moved at least once


async def test_a_store_down_at_start_is_waited_for_without_a_restart(deployment, session, spare_redis):
    spare_redis.stop()
    deployment.start()
    https = f"https://127.0.0.1:{deployment.https_port}/ready"
    await asyncio.sleep(4)  # past startsecs, and several tries at Redis
    before = deployment.pids()
    assert [state for state, _ in before.values()] == ["RUNNING", "RUNNING"], deployment.ctl("status")
    assert await status(session, https) == 503
    assert [await status(session, f"http://127.0.0.1:{port}/ready") for port in deployment.ports] == [503, 503]

    spare_redis.start()
    assert await all_ready(session, deployment, within=10)  # retries are at most 5 s apart
    assert await status(session, https) == 200
    assert deployment.pids() == before  # the same processes: nobody restarted them
    for port in deployment.ports:
        log = deployment.chip_log(port)
        assert "valkey/redis at" in log and "not ready, trying again in" in log and "answers after" in log


@pytest.mark.skipif(not shutil.which("logrotate"), reason="needs logrotate")
async def test_log_rotation_and_sighup_through_supervisorctl_keep_chip_running(deployment, session):
    deployment.start()
    assert await all_ready(session, deployment, within=15)
    # ready can come before supervisord's startsecs have passed; compare PIDs once it says RUNNING
    assert await wait_until(lambda: all(state == "RUNNING" for state, _ in deployment.pids().values()), timeout=10), (
        deployment.ctl("status")
    )
    before = deployment.pids()
    rotated = deployment.logrotate()
    assert rotated.returncode == 0, rotated.stderr
    assert "chip:chip-" in deployment.ctl("signal", "HUP", "chip:*")
    for port in deployment.ports:
        assert await wait_until(lambda port=port: "reload: log level info" in deployment.chip_log(port), timeout=5)
        assert "chip ready" in deployment.chip_log(port, ".1")  # what was logged before the rotation
    # supervisord rotates its own log by size: two rotations of one file would lose some of it
    assert not list((deployment.dir / "log").glob("supervisord.log.*"))
    assert deployment.pids() == before
    assert await all_ready(session, deployment)
