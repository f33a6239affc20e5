"""How long one /wc/send request can hold chip's event loop (issue 11), measured from outside.

Starts chip.py on loopback (a bench database with one channel and chat, Redis DB 12 flushed before
and after), keeps a probe asking GET / on a kept-alive connection back to back, and posts each
worst-case body a few times: with a wrong secret and with the right one. A request that holds the
loop delays the probe's answer; the table gives, per case, the longest probe round trip while the
case ran, next to the longest while nothing else did. `python -m bench.blocking` (about 30 s).
"""

import asyncio
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone

import orjson
import redis
from marshmallow import ValidationError

from bench.run import ADMIN_DB, ROOT, VALKEY, free_port
from demo.rows import Rows, create_database, drop_database
from handlers import schemas
from services import events

CHAT = "b" * 24
REPEATS = 20
LIMIT = 256 * 1024  # chip's default --max-body-bytes
ITEMS = 10  # and --max-list-items


def msg(**fields) -> dict:
    return {"id": 1, "text": "hi", "origin": "flow", **fields}


def cases() -> list[tuple[str, bytes]]:
    """(name, body): the largest bodies chip reads, each of the shapes that cost most to handle."""

    def fill(build, room=LIMIT - 200):
        """build(n) with the largest n whose body stays under the limit."""
        low, high = 1, room
        while low < high:
            middle = (low + high + 1) // 2
            if len(orjson.dumps(build(middle))) <= room:
                low = middle
            else:
                high = middle - 1
        return orjson.dumps(build(low))

    def body(secret, **fields):
        return {"chat_id": CHAT, "secret": secret, "msg": msg(**fields)}

    found = []
    for secret in ("wrong", "sesame"):
        found += [
            (f"{secret}: 256 KiB text", fill(lambda n, s=secret: body(s, text="x" * n))),
            (f"{secret}: 256 KiB of list items", fill(lambda n, s=secret: body(s, attachments=[1] * n))),
            (
                f"{secret}: {ITEMS} bad items in each list",
                orjson.dumps(body(secret, attachments=[1] * ITEMS, quick_replies=[None] * ITEMS)),
            ),
            (
                f"{secret}: largest valid lists + text",
                fill(
                    lambda n, s=secret: body(
                        s,
                        text="x" * n,
                        attachments=["image/png:" + "x" * 2038] * ITEMS,
                        quick_replies=["y" * 2048] * ITEMS,
                    )
                ),
            ),
            (f"{secret}: 256 KiB of empty objects", fill(lambda n, s=secret: {**body(s), "junk": [{}] * n})),
            (f"{secret}: 256 KiB of small numbers", fill(lambda n, s=secret: {**body(s), "junk": [0] * n})),
        ]
    return found


class Probe:
    """GET / back to back on one kept-alive connection, keeping every round trip's time."""

    def __init__(self, port: int):
        self.port = port
        self.times: list[tuple[float, float]] = []  # (finished at, round trip)
        self.running = True

    async def run(self):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        while self.running:
            started = time.perf_counter()
            writer.write(b"GET / HTTP/1.1\r\nHost: chip\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            now = time.perf_counter()
            self.times.append((now, now - started))
        writer.close()

    def worst(self, since: float, until: float) -> float:
        return max((rtt for at, rtt in self.times if since <= at <= until), default=float("nan"))


async def measure(port: int, channel_uuid: str) -> list[tuple[str, int, int, float, float]]:
    """Per case: (name, body size, lowest status, median and longest of the probe's worst round trip
    during each request). Every case is run once first, so that no first-time cost is counted."""
    probe = Probe(port)
    task = asyncio.ensure_future(probe.run())
    found = cases()
    for _, body in found:
        await post_to(port, channel_uuid, fresh(body))
    quiet = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        await asyncio.sleep(0.05)
        quiet.append(probe.worst(started, time.perf_counter()))
    rows = [("nothing (the probe alone)", 0, 0, statistics.median(quiet), max(quiet))]
    for name, body in found:
        statuses, worst = set(), []
        for _ in range(REPEATS):
            started = time.perf_counter()
            statuses.add(await post_to(port, channel_uuid, fresh(body)))
            await asyncio.sleep(0.02)
            worst.append(probe.worst(started, time.perf_counter()))
        rows.append((name, len(body), min(statuses), statistics.median(worst), max(worst)))
    probe.running = False
    await task
    return rows


def fresh(body: bytes) -> bytes:
    """The body with a message id of its own: a queued message sent again would be a repeat."""
    return body.replace(b'"id":1,', f'"id":{time.time_ns() % 10**15},'.encode(), 1)


async def post_to(port: int, channel_uuid: str, body: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST /wc/send/{channel_uuid}/ HTTP/1.1\r\nHost: chip\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + body
    )
    answer = await reader.read()
    writer.close()
    return int(answer.split()[1])


def held(body: bytes) -> float:
    """Seconds of the synchronous part of chip's handling of this body (handlers/send.py post():
    parse, count the lists, validate, describe the errors; for a valid one, encode its frame), which
    is what holds the event loop; the awaits in between (database, Redis) do not."""
    started = time.perf_counter()
    try:
        data = orjson.loads(body)
        schemas.check_list_lengths(data, ITEMS)
        valid = schemas.Send().load(data)
        orjson.dumps(
            events.chat_out(
                events.msg_out(
                    1,
                    valid["msg"]["text"],
                    "flow",
                    datetime.now(timezone.utc),
                    None,
                    valid["msg"].get("attachments"),
                    valid["msg"].get("quick_replies"),
                )
            )
        )
    except ValidationError as e:
        schemas.describe(e.messages)
    return time.perf_counter() - started


def main():
    store = redis.Redis.from_url(VALKEY)
    store.flushdb()
    db_url = create_database(ADMIN_DB, f"chip_blocking_{int(time.time())}")
    chip = None
    try:
        rows = Rows(db_url)
        org_id = rows.org()
        channel_uuid = rows.channel(org_id)
        rows.contact(org_id, channel_uuid, CHAT)
        rows.close()
        port = free_port()
        chip = subprocess.Popen(
            [
                sys.executable,
                "chip.py",
                "--address",
                "127.0.0.1",
                "--port",
                str(port),
                "--db",
                db_url,
                "--valkey",
                VALKEY,
                "--courier-url",
                "http://127.0.0.1:9",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
        )
        for _ in range(400):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        results = asyncio.run(measure(port, channel_uuid))
    finally:
        if chip is not None:
            chip.terminate()
            chip.wait(15)
        drop_database(ADMIN_DB, db_url)
        store.flushdb()
        store.close()
    print(f"| case | body bytes | status | GET / round trip during a request, median of {REPEATS} | longest |")
    print("|---|---|---|---|---|")
    for name, size, status, median, worst in results:
        print(f"| {name} | {size:,} | {status or ''} | {median * 1000:.1f} ms | {worst * 1000:.1f} ms |")
    print(f"\n| case | loop held, median of {REPEATS} | longest |\n|---|---|---|")
    for name, body in cases():
        times = [held(body) for _ in range(REPEATS)]
        print(f"| {name} | {statistics.median(times) * 1000:.1f} ms | {max(times) * 1000:.1f} ms |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
