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
import redis
from tornado.httpclient import HTTPClientError
from tornado.testing import bind_unused_port
from tornado.websocket import websocket_connect

from demo.rows import create_database, drop_database
from tests.servers import ROOT


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, str(ROOT / "chip.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=30,
    )


def test_help_lists_settings():
    result = run("--help")
    assert result.returncode == 0 and "--courier-url" in result.stdout and "CHIP_VALKEY" in result.stdout
    assert "--dead-letter-ttl" in result.stdout and "chip.py admin --help" in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--port", "nope"], {}, "chip: error: argument --port: 'nope' is not a number"),
        ([], {"CHIP_DB": "sqlite:///x"}, "chip: error: CHIP_DB: 'sqlite:///x' is not a URL"),
        (["--env-file", "/nonexistent/chip.env"], {}, "chip: error: --env-file /nonexistent/chip.env: No such file"),
        (
            ["--valkey", "valkey+cluster://chip:hunter2@a:7000,b:x/"],
            {},
            "chip: error: argument --valkey: 'valkey+cluster://chip:***@a:7000,b:x/': 'b:x' is not host:port",
        ),
        (
            [],
            {"CHIP_VALKEY": "valkeys+sentinel://:hunter2@a:26379/"},
            "chip: error: CHIP_VALKEY: 'valkeys+sentinel://:***@a:26379/': the URL must end with /<service name>",
        ),
        (["--log-format", "xml"], {}, "chip: error: argument --log-format: 'xml' is not one of text, json"),
        ([], {"CHIP_LOG_FORMAT": "logfmt"}, "chip: error: CHIP_LOG_FORMAT: 'logfmt' is not one of text, json"),
        ([], {"CHIP_LEGACY_UPGRADE": "on"}, "chip: error: CHIP_LEGACY_UPGRADE: 'on' is not one of auto, off"),
    ],
)
def test_bad_configuration_is_one_line_and_status_2(args, env, message):
    result = run(*args, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr


def test_a_misspelt_setting_in_the_env_file_is_one_line_and_status_2(tmp_path):
    (tmp_path / "chip.env").write_text("CHIP_DOMAIN=chat.example.com\nCHIP_VALKY=redis://localhost/1\n")
    result = run("--env-file", str(tmp_path / "chip.env"))
    assert result.returncode == 2
    assert result.stderr == (
        f"chip: error: --env-file {tmp_path / 'chip.env'}: CHIP_VALKY is not a chip setting (CHIP_<NAME>; see --help)\n"
    )


async def test_json_logs_are_one_object_a_line_with_the_fields_of_the_message(chip_process, http, channel, connect):
    process = await chip_process("--log-format", "json").ready(http)
    visitor = await connect(process, channel["uuid"])
    chat_id = (await visitor.start())["chat_id"]
    status, stderr = process.terminate()
    assert status == 0
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line, or this fails
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in lines)
    [started] = [entry for entry in lines if entry["message"].startswith("chat started ")]
    assert started["level"] == "info" and started["logger"] == "services.chats"
    assert (started["channel"], started["chat"]) == (channel["uuid"], chat_id)
    [ready] = [entry for entry in lines if entry["message"].startswith("chip ready")]
    assert ready["instance"] and ready["courier"].startswith("http://")


async def test_a_store_down_at_start_is_retried_until_it_answers(chip_process, spare_redis, http, channel, connect):
    """As under supervisord: chip started while Redis is down does not exit; it listens, says it is
    not ready (and refuses sockets and /wc/send with 503), and becomes ready when Redis comes back."""
    spare_redis.stop()
    process = await chip_process("--valkey", spare_redis.url).ready(http, path="/")
    # GET / answers at once; the database answers a moment later, and then only Redis is waited for
    for _ in range(100):
        answer = await http(process.url + "/ready")
        if answer != (503, {"ready": False, "error": "starting: waiting for the database"}):
            break
        await asyncio.sleep(0.05)
    assert answer == (503, {"ready": False, "error": "starting: waiting for valkey/redis"})
    body = json.dumps({"chat_id": "a" * 24, "secret": "sesame", "msg": {"id": 1, "text": "hi", "origin": "flow"}})
    assert await http(f"{process.url}/wc/send/{channel['uuid']}/", method="POST", body=body) == (
        503,
        {"error": "starting: waiting for valkey/redis"},
    )
    with pytest.raises(HTTPClientError) as refused:
        await connect(process, channel["uuid"])
    assert refused.value.code == 503

    spare_redis.start()
    await process.ready(http, timeout=10)  # the retries are capped at 5 s apart
    visitor = await connect(process, channel["uuid"])
    assert (await visitor.start())["type"] == "chat_started"
    status, stderr = process.terminate()
    assert status == 0
    assert f"valkey/redis at {spare_redis.url} does not answer" in stderr and "not ready, trying again in" in stderr
    assert f"valkey/redis at {spare_redis.url} answers after" in stderr


async def test_the_database_down_at_start_is_logged_without_its_password(chip_process, http):
    process = await chip_process("--db", "postgres://temba:hunter2@127.0.0.1:1/temba").ready(http, path="/")
    status, body = await http(process.url + "/ready")
    assert (status, body) == (503, {"ready": False, "error": "starting: waiting for the database"})
    await asyncio.sleep(0.5)  # at least one try has failed and been logged
    status, stderr = process.terminate(timeout=10)  # a stop while waiting ends the wait at once
    assert status == 0
    assert "the database at postgres://temba:***@127.0.0.1:1/temba does not answer" in stderr
    assert "hunter2" not in stderr


@pytest.mark.parametrize(
    "url",
    [
        "valkey+cluster://chip:hunter2@127.0.0.1:1,127.0.0.1:2/",
        "valkey+sentinel://chip:hunter2@127.0.0.1:1,127.0.0.1:2/mymaster/0",
    ],
)
async def test_a_cluster_or_sentinel_down_at_start_is_waited_for_as_one_server_is(chip_process, http, url):
    process = await chip_process("--valkey", url).ready(http, path="/")
    for _ in range(100):
        answer = await http(process.url + "/ready")
        if answer == (503, {"ready": False, "error": "starting: waiting for valkey/redis"}):
            break
        await asyncio.sleep(0.05)
    assert answer == (503, {"ready": False, "error": "starting: waiting for valkey/redis"})
    await asyncio.sleep(0.5)  # at least one try has failed and been logged
    status, stderr = process.terminate(timeout=10)
    assert status == 0
    assert f"valkey/redis at {url.replace('hunter2', '***')} does not answer" in stderr
    assert "not ready, trying again in" in stderr and "hunter2" not in stderr and "Traceback" not in stderr


async def test_two_processes_send_to_one_receive_on_the_other(chip_process, http, channel, courier):
    one = await chip_process("--instance-id", "one").ready(http)
    two = await chip_process("--instance-id", "two").ready(http)
    conn = await websocket_connect(f"{two.ws_url}/wc/connect/{channel['uuid']}/")
    try:
        await conn.write_message(json.dumps({"type": "start_chat"}))
        chat_id = json.loads(await asyncio.wait_for(conn.read_message(), 5))["chat_id"]
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
    await asyncio.wait_for(conn.read_message(), 5)
    process.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(conn.read_message(), 10) is None
    assert conn.close_code == 1001
    assert await asyncio.get_running_loop().run_in_executor(None, process.proc.wait, 15) == 0
    conn.close()


async def test_sighup_reloads_the_log_level_and_keeps_every_socket(chip_process, http, channel, connect, tmp_path):
    env_file = tmp_path / "chip.env"
    env_file.write_text("CHIP_LOG_LEVEL=info\n")
    process = await chip_process("--env-file", str(env_file)).ready(http)
    visitor = await connect(process, channel["uuid"])
    chat_id = (await visitor.start())["chat_id"]
    env_file.write_text("CHIP_LOG_LEVEL=debug\nCHIP_ACK_TIMEOUT=3\n")
    process.proc.send_signal(signal.SIGHUP)
    await asyncio.sleep(0.3)
    assert process.proc.poll() is None
    await visitor.send({"type": "get_history", "before": "2030-01-01T00:00:00Z"})
    assert (await visitor.recv())["type"] == "history"  # the same socket, still served
    visitor.close()
    await asyncio.sleep(0.2)  # at debug level, the closed socket is logged
    status, stderr = process.terminate()
    assert status == 0
    assert "reload: log level debug; these take a restart: ack_timeout" in stderr
    assert f"socket closed channel={channel['uuid']} chat={chat_id}" in stderr


async def test_a_wc_send_received_before_sigterm_is_answered(chip_process, spare_redis, http, channel, rows):
    process = await chip_process("--valkey", spare_redis.url).ready(http)
    chat_id = "p" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    body = json.dumps({"chat_id": chat_id, "secret": "sesame", "msg": {"id": 1, "text": "hi", "origin": "flow"}})
    send = f"{process.url}/wc/send/{channel['uuid']}/"
    assert (await http(send, method="POST", body=body))[0] == 200  # the channel and chat are looked up
    # Redis holds every command for 1.5 s: the next /wc/send is received and waits on it
    redis.Redis.from_url(spare_redis.url).execute_command("CLIENT", "PAUSE", 1500, "ALL")
    in_flight = asyncio.ensure_future(
        http(send, method="POST", body=body.replace('"id": 1', '"id": 2'), request_timeout=10)
    )
    await asyncio.sleep(0.3)
    process.proc.send_signal(signal.SIGTERM)
    assert await in_flight == (200, {"status": "queued"})
    assert await asyncio.get_running_loop().run_in_executor(None, process.proc.wait, 15) == 0


def test_a_schema_chip_cannot_serve_is_one_line_and_status_2(test_db, redis_url):
    url = create_database(test_db, f"chip_old_{secrets.token_hex(4)}")
    try:
        conn = psycopg2.connect(url)
        with conn, conn.cursor() as cur:
            cur.execute("DROP TABLE orgs_orgmembership; ALTER TABLE msgs_msg DROP COLUMN ticket_uuid")
        conn.close()
        sock, port = bind_unused_port()
        sock.close()
        result = run("--db", url, "--valkey", redis_url, "--address", "127.0.0.1", "--port", str(port))
    finally:
        drop_database(test_db, url)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        "chip: error: RapidPro's database lacks table orgs_orgmembership, msgs_msg.ticket_uuid or ticket_id"
    )


async def test_stopping_the_server_answers_a_wc_send_in_flight_before_redis_closes(
    start_chip, spare_redis, http, channel, rows
):
    """chip.Server.stop, the one stop the process, the demo and these tests run: a request received
    before the stop is answered before the services close under it."""
    server = await start_chip(valkey=spare_redis.url)
    chat_id = "q" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    body = json.dumps({"chat_id": chat_id, "secret": "sesame", "msg": {"id": 1, "text": "hi", "origin": "flow"}})
    send = f"{server.url}/wc/send/{channel['uuid']}/"
    assert (await http(send, method="POST", body=body))[0] == 200
    redis.Redis.from_url(spare_redis.url).execute_command(
        "CLIENT", "PAUSE", 3000, "ALL"
    )  # longer than the stop takes to reach Redis
    in_flight = asyncio.ensure_future(
        http(send, method="POST", body=body.replace('"id": 1', '"id": 2'), request_timeout=10)
    )
    await asyncio.sleep(0.3)
    stopping = asyncio.ensure_future(server.stop())
    assert await in_flight == (200, {"status": "queued"})
    await asyncio.wait_for(stopping, 15)
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        await http(server.url + "/", request_timeout=2)
