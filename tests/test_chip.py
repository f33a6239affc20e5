"""chip.py as operators run it: real processes, real signals, exit statuses."""

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys

import psycopg2
import pytest
from tornado.websocket import websocket_connect

from tests.rows import create_database, drop_database
from tests.servers import ROOT


def run(*args, env=None):
    return subprocess.run([sys.executable, str(ROOT / "chip.py"), *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=30)


def test_help_lists_settings():
    result = run("--help")
    assert result.returncode == 0 and "--courier-url" in result.stdout and "CHIP_VALKEY" in result.stdout


@pytest.mark.parametrize("args, env, message", [
    (["--port", "nope"], {}, "chip: error: argument --port: 'nope' is not a number"),
    ([], {"CHIP_DB": "sqlite:///x"}, "chip: error: CHIP_DB: 'sqlite:///x' is not a URL"),
    (["--db", "postgres://postgres@127.0.0.1:1/x"], {}, "chip: error: cannot reach the database at"),
])
def test_bad_configuration_is_one_line_and_status_2(args, env, message):
    result = run(*args, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_redis_is_one_line_and_status_2(pg_url):
    result = run("--db", pg_url, "--valkey", "redis://127.0.0.1:1/0")
    assert result.returncode == 2 and result.stderr == "chip: error: cannot reach valkey/redis at redis://127.0.0.1:1/0\n"


def test_password_is_not_printed(pg_url):
    result = run("--db", "postgres://temba:hunter2@127.0.0.1:1/temba")
    assert "hunter2" not in result.stderr and "***" in result.stderr


async def test_two_processes_send_to_one_receive_on_the_other(chip_process, http, channel, courier):
    one = await chip_process("--instance-id", "one").ready(http)
    two = await chip_process("--instance-id", "two").ready(http)
    conn = await websocket_connect(f"{two.ws_url}/wc/connect/{channel['uuid']}/")
    try:
        await conn.write_message(json.dumps({"type": "start_chat"}))
        chat_id = json.loads(await conn.read_message())["chat_id"]
        for i in (1, 2):
            body = {"chat_id": chat_id, "secret": "sesame", "msg": {"id": i, "text": f"m{i}", "origin": "flow"}}
            status, _ = await http(f"{one.url}/wc/send/{channel['uuid']}/", method="POST", body=json.dumps(body))
            assert status == 200
        frames = [json.loads(await asyncio.wait_for(conn.read_message(), 5)) for _ in range(2)]
        assert [f["msg_out"]["id"] for f in frames] == [1, 2]
    finally:
        conn.close()


async def test_sigterm_closes_sockets_with_1001_and_exits_0(chip_process, http, channel):
    process = await chip_process().ready(http)
    conn = await websocket_connect(f"{process.ws_url}/wc/connect/{channel['uuid']}/")
    await conn.write_message(json.dumps({"type": "start_chat"}))
    await conn.read_message()
    process.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(conn.read_message(), 10) is None
    assert conn.close_code == 1001
    assert await asyncio.get_running_loop().run_in_executor(None, process.proc.wait, 15) == 0
    conn.close()


def test_a_schema_chip_cannot_serve_is_one_line_and_status_2(test_db, redis_url):
    url = create_database(test_db, f"chip_old_{secrets.token_hex(4)}")
    try:
        conn = psycopg2.connect(url)
        with conn, conn.cursor() as cur:
            cur.execute("DROP TABLE orgs_orgmembership; ALTER TABLE msgs_msg DROP COLUMN ticket_uuid")
        conn.close()
        result = run("--db", url, "--valkey", redis_url)
    finally:
        drop_database(test_db, url)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("chip: error: RapidPro's database lacks table orgs_orgmembership, "
                                    "msgs_msg.ticket_uuid or ticket_id")
