"""The path a fresh laptop takes: `python -m demo` on embedded servers, and the test suite's
fallback to them when no PostgreSQL or Redis is configured or reachable."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import websocket_connect

from demo.embedded import free_port
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parent.parent.parent


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def stop(process, pids):
    """Teardown: the demo by its PID, then any server it left behind, by theirs."""
    if process.returncode is None:
        process.kill()
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


async def test_make_demo_runs_a_chat_on_embedded_servers_and_stops_them(tmp_path):
    port = free_port()
    data = tmp_path / "demo"
    with open(tmp_path / "demo.log", "wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "demo",
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            "--data",
            str(data),
            "--pause",
            "0.01",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    pids = []
    try:
        url = None
        while url is None:
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            assert line, (tmp_path / "demo.log").read_text()
            if "open http" in line:
                url = line.split("open ", 1)[1].strip()
        pids = [
            int((data / "pg" / "postmaster.pid").read_text().split()[0]),
            int((data / "redis" / "redis.pid").read_text()),
        ]
        assert all(alive(pid) for pid in pids)
        assert url == f"http://localhost:{port}/wc/demo/c0ffee00-5eed-4c4a-8d3e-000000000001/"
        page = await AsyncHTTPClient().fetch(url.replace("localhost", "127.0.0.1"))
        assert b'<script src="/wc/widget.js" data-channel="c0ffee00-5eed-4c4a-8d3e-000000000001"' in page.body
        loader = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/wc/widget.js")
        assert b"widget/" in loader.body

        conn = await websocket_connect(f"ws://127.0.0.1:{port}/wc/connect/c0ffee00-5eed-4c4a-8d3e-000000000001/")
        try:
            await conn.write_message(json.dumps({"type": "start_chat"}))
            assert json.loads(await asyncio.wait_for(conn.read_message(), 10))["type"] == "chat_started"
            await conn.write_message(json.dumps({"type": "send_msg", "text": "hello"}))
            welcome = [json.loads(await asyncio.wait_for(conn.read_message(), 10))["msg_out"] for _ in range(2)]
            assert [m["origin"] for m in welcome] == ["flow", "flow"]
            assert welcome[0]["attachments"][0].startswith("image/svg+xml:http://localhost:")
            assert "Talk to a person" in welcome[1]["quick_replies"]
            await conn.write_message(json.dumps({"type": "send_msg", "text": "Talk to a person"}))
            staff = json.loads(await asyncio.wait_for(conn.read_message(), 10))["msg_out"]
            assert staff["origin"] == "chat" and staff["user"]["name"] == "Sam Okafor"
            avatar = await AsyncHTTPClient().fetch(staff["user"]["avatar"].replace("localhost", "127.0.0.1"))
            assert avatar.headers["Content-Type"] == "image/svg+xml"
        finally:
            conn.close()

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        # the postmaster exits just after pg_ctl reports it stopped
        await wait_until(lambda: not any(alive(pid) for pid in pids), interval=0.1)
        assert not any(alive(pid) for pid in pids), "an embedded server outlived the demo"
        assert (data / "pg" / "PG_VERSION").exists()  # the data stays for the next run
    finally:
        stop(process, pids)


@pytest.mark.timeout(400)  # above the inner run's own 300 s, so that one reports first
def test_suite_falls_back_to_embedded_servers(tmp_path):
    """A run with nothing configured and local servers ignored starts, uses and stops its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("CHIP_TEST_DB", "CHIP_TEST_VALKEY")}
    env["CHIP_TEST_EMBEDDED"] = "1"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'inner'}",
            "tests/handlers/test_send.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "chip test servers: postgresql=embedded redis=embedded" in result.stdout
    assert " passed" in result.stdout.splitlines()[-1]
