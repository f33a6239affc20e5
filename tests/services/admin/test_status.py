"""`chip.py admin status`: the processes, the backlogs and the dead letters, and an exit status a cron
or Nagios check can use: 0 all is well, 1 a problem, 2 a bad setting."""

import asyncio
import json
import re

import pytest

from services.backoff import Backoff
from tests.polling import wait_until

FAST = dict(courier=Backoff(0.05, 0.2), tick=0.05)


async def test_every_ready_process_is_listed_and_the_status_is_0(admin, start_chip):
    await start_chip(instance_id="admin-a")
    await start_chip(instance_id="admin-b")
    ran = await admin("status")
    assert ran.status == 0, ran
    assert "admin-a" in ran.out and "admin-b" in ran.out and ran.out.rstrip().endswith("OK")
    found = json.loads((await admin("status", "--json")).out)
    assert sorted((p["instance"], p["state"], p["ready"]) for p in found["processes"]) == [
        ("admin-a", "ready", True),
        ("admin-b", "ready", True),
    ]
    assert found["problems"] == []


async def test_no_ready_process_is_a_problem(admin, start_chip):
    ran = await admin("status")
    assert ran.status == 1 and "PROBLEM: no ready chip process has beat in the last 60 s" in ran.out, ran
    server = await start_chip(instance_id="leaving")
    await server.stop()
    found = json.loads((await admin("status", "--json")).out)
    assert [(p["instance"], p["state"]) for p in found["processes"]] == [("leaving", "stopping")]
    assert found["problems"] == ["no ready chip process has beat in the last 60 s"]


async def test_a_courier_backlog_older_than_allowed_is_a_problem_and_outboxes_are_counted(
    admin, start_chip, bound, channel, courier, post_msg, rows
):
    server = await start_chip(retry=FAST)
    visitor = await bound(server, channel)
    courier.fail_with = 503
    await visitor.send({"type": "send_msg", "text": "waiting"})
    await visitor.send({"type": "send_msg", "text": "waiting too"})
    away = "w" * 24
    rows.contact(channel["org_id"], channel["uuid"], away)
    await post_msg(channel["uuid"], away, {"id": 31, "text": "for later", "origin": "flow"}, server=server)
    await asyncio.sleep(1.2)
    ran = await admin("status", "--max-backlog-age", "1")
    assert ran.status == 1, ran
    assert re.search(r"^courier backlog: 2 event\(s\) of 1 chat\(s\) waiting, the oldest for \ds$", ran.out, re.M)
    assert "outboxes: 1 message(s) of 1 chat(s) waiting for their visitors" in ran.out
    assert re.search(
        r"^PROBLEM: the oldest event for Courier has waited \ds, more than --max-backlog-age 1 s$", ran.out, re.M
    )
    assert (await admin("status")).status == 0  # within the default 600 s
    courier.fail_with = 0
    await courier.wait_for(lambda: len(courier.of_type("msg_in", visitor.chat_id)) == 2)
    found = json.loads((await admin("status", "--json", "--max-backlog-age", "1")).out)
    assert found["courier"] == {"events": 0, "chats": 0, "oldest": None} and found["problems"] == []


async def test_dead_letters_are_counted_by_reason(admin, start_chip, bound, channel, courier):
    server = await start_chip(retry=FAST)
    visitor = await bound(server, channel)
    courier.fail_with = 400
    await visitor.send({"type": "send_msg", "text": "refused"})
    assert await wait_until(
        lambda: (
            server.services.metrics.registry.get_sample_value("chip_dead_letters_total", {"reason": "rejected"}) == 1
        )
    )
    found = json.loads((await admin("status", "--json")).out)
    assert found["dead_letters"] == {"rejected": 1}
    assert "dead letters: 1\nREASON    LETTERS\nrejected  1" in (await admin("status")).out


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["status", "--valkey", "memcached://x"], {}, "chip: error: argument --valkey: 'memcached://x': not a URL"),
        (["status", "--max-backlog-age", "-1"], {}, "chip: error: argument --max-backlog-age: '-1' must be greater"),
        (["status"], {"CHIP_DB": "sqlite:///x"}, "chip: error: CHIP_DB: 'sqlite:///x' is not a URL"),
        (["nope"], {}, "chip: error: argument command: invalid choice: 'nope'"),
        (["dead-letters", "drop"], {}, "chip: error: dead-letters drop: name letters by ID, or --all, not both"),
    ],
)
async def test_a_bad_setting_or_command_is_one_line_and_status_2(admin, args, env, message):
    ran = await admin(*args, env=env, settings=False)
    assert ran.status == 2 and ran.err.count("\n") == 1 and ran.err.startswith(message), ran


async def test_an_env_file_serves_as_it_does_the_server(admin, redis_url, pg_url, tmp_path, start_chip):
    await start_chip(instance_id="from-file")
    (tmp_path / "chip.env").write_text(f"CHIP_VALKEY={redis_url}\nCHIP_DB={pg_url}\nCHIP_PORT=8070\n")
    ran = await admin("status", "--env-file", str(tmp_path / "chip.env"), settings=False)
    assert ran.status == 0 and "from-file" in ran.out, ran
    (tmp_path / "bad.env").write_text("CHIP_VALKY=redis://localhost/1\n")
    ran = await admin("status", env={"CHIP_ENV_FILE": str(tmp_path / "bad.env")}, settings=False)
    assert ran.status == 2 and "CHIP_VALKY is not a chip setting" in ran.err


async def test_a_redis_that_does_not_answer_is_a_problem_named_without_its_password(admin):
    ran = await admin("status", valkey="redis://:hunter2@127.0.0.1:1/0")
    assert ran.status == 1 and ran.err.startswith(
        "chip admin: valkey/redis at redis://:***@127.0.0.1:1/0 does not answer"
    ), ran
    assert "hunter2" not in ran.err and "Traceback" not in ran.err and ran.err.count("\n") == 1
