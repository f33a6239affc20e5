"""Issue 11 findings 3 and 6: slow clients, too many connections from one client, and a process out
of file descriptors, all through real sockets (and, for the descriptors, chip.py in a process)."""

import asyncio
import json
import os
import resource
import time

import pytest
from tornado.httpclient import HTTPClientError

from services.config import parse


async def dribble(server, first: bytes, then: bytes, every: float, limit: float = 5.0) -> float:
    """Open a connection, send `first`, then `then` every `every` s; how long until chip closed it
    (AssertionError if it still held it after `limit` s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = time.monotonic()
    try:
        writer.write(first)
        while time.monotonic() - started < limit:
            try:
                if await asyncio.wait_for(reader.read(1024), every) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                writer.write(then)
        raise AssertionError(f"a client dribbling {then!r} was held for {limit} s")
    finally:
        writer.close()


async def get_status(server, reader, writer) -> int:
    writer.write(b"GET / HTTP/1.1\r\nHost: chip\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    await reader.readexactly(length)
    return int(head.split()[1])


async def test_slowloris_headers_are_cut_off_by_the_header_timeout(start_chip, http):
    server = await start_chip(header_timeout=0.5)
    # a handful of clients, each sending one more header line every 0.1 s, for ever
    held = await asyncio.gather(*[dribble(server, b"GET / HTTP/1.1\r\n", b"X-a: b\r\n", 0.1) for _ in range(5)])
    assert all(seconds < 3 for seconds in held), held
    assert (await http(server.url + "/"))[0] == 200


async def test_a_body_sent_slowly_is_cut_off_by_the_body_timeout(start_chip, channel):
    server = await start_chip(body_timeout=0.5)
    head = (f"POST /wc/send/{channel['uuid']}/ HTTP/1.1\r\nHost: chip\r\nContent-Length: 100000\r\n\r\n").encode()
    assert await dribble(server, head, b"{", 0.1) < 3


async def test_an_idle_kept_alive_connection_is_closed(start_chip):
    server = await start_chip(header_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await get_status(server, reader, writer) == 200
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()


async def test_plain_connections_per_ip_are_counted_and_freed(start_chip, channel, connect):
    server = await start_chip(max_connections_per_ip=3)
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 429 ")
        assert json.loads(body) == {"error": "more than 3 open connections from this address"}
        # one of the three is served, and freeing it lets another client in
        assert await get_status(server, *held[0]) == 200
        held[0][1].close()
        freed = False
        for _ in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                freed = await get_status(server, reader, writer) == 200
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()
            if freed:
                break
            await asyncio.sleep(0.05)
        assert freed
    finally:
        for _, writer in held:
            writer.close()


async def test_an_upgraded_socket_leaves_the_connection_count(start_chip, channel, connect, http):
    server = await start_chip(max_connections_per_ip=2)
    visitors = [await connect(server, channel["uuid"]) for _ in range(4)]
    for visitor in visitors:
        assert (await visitor.start())["type"] == "chat_started"
    assert (await http(server.url + "/"))[0] == 200


async def test_connections_from_a_trusted_proxy_are_not_counted(start_chip):
    loopback = parse(["--trusted-proxies", "127.0.0.1"], environ={}).trusted_proxies
    server = await start_chip(max_connections_per_ip=1, trusted_proxies=loopback)
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    try:
        for reader, writer in held:
            assert await get_status(server, reader, writer) == 200
    finally:
        for _, writer in held:
            writer.close()


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_out_of_descriptors_logs_once_and_keeps_serving_connected_clients(chip_process, http, channel, connect):
    chip = await chip_process("--max-connections-per-ip", "1000", "--header-timeout", "60").ready(http)
    visitor = await connect(chip, channel["uuid"])
    await visitor.start()
    kept = await asyncio.open_connection("127.0.0.1", chip.port)
    assert await get_status(chip, *kept) == 200
    pid = chip.proc.pid
    _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (len(os.listdir(f"/proc/{pid}/fd")) + 3, hard))
    flood = []
    try:
        for _ in range(60):
            flood.append(await asyncio.open_connection("127.0.0.1", chip.port))
        # connections past the limit are closed at once instead of waiting in the backlog
        closed = 0
        for reader, _ in flood:
            try:
                closed += await asyncio.wait_for(reader.read(), 0.2) == b""
            except (TimeoutError, ConnectionError):
                closed += isinstance(reader.exception(), ConnectionError)
        assert closed >= 50
        before = cpu_seconds(pid)
        await asyncio.sleep(1)
        assert cpu_seconds(pid) - before < 0.5  # no busy accept loop
        # those already connected are served: a WebSocket command, and a kept-alive HTTP connection
        await visitor.send({"type": "start_chat"})
        assert (await visitor.recv())["type"] == "chat_resumed"
        assert await get_status(chip, *kept) == 200
    finally:
        for _, writer in flood:
            writer.close()
        kept[1].close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
    assert (await http(chip.url + "/"))[0] == 200
    chip.proc.kill()
    chip.proc.wait()
    log = chip.proc.stderr.read()
    assert log.count("out of file descriptors") == 1, log[-3000:]
    assert "Traceback" not in log


@pytest.mark.parametrize(
    "forwarded, allowed",
    [
        (["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"], False),  # one /64
        (["2001:db8:1:2::1", "2001:db8:1:3::1"], True),  # two
        (["198.51.100.1", "::ffff:198.51.100.1"], False),  # an IPv4 address, written both ways
    ],
)
async def test_ipv6_clients_are_counted_by_their_64(start_chip, channel, connect, forwarded, allowed):
    """Finding 6, through a trusted proxy (the loopback interface has one IPv6 address)."""
    loopback = parse(["--trusted-proxies", "127.0.0.1"], environ={}).trusted_proxies
    server = await start_chip(max_sockets_per_ip=1, trusted_proxies=loopback)
    await connect(server, channel["uuid"], headers={"X-Forwarded-For": forwarded[0]})
    if allowed:
        await connect(server, channel["uuid"], headers={"X-Forwarded-For": forwarded[1]})
    else:
        with pytest.raises(HTTPClientError) as refused:
            await connect(server, channel["uuid"], headers={"X-Forwarded-For": forwarded[1]})
        assert refused.value.code == 429


async def test_new_chats_from_one_ipv6_64_are_counted_together(start_chip, channel, connect):
    loopback = parse(["--trusted-proxies", "127.0.0.1"], environ={}).trusted_proxies
    server = await start_chip(new_chats_per_ip=1, trusted_proxies=loopback)
    first = await connect(server, channel["uuid"], headers={"X-Forwarded-For": "2001:db8:5:6::1"})
    assert (await first.start())["type"] == "chat_started"
    neighbour = await connect(server, channel["uuid"], headers={"X-Forwarded-For": "2001:db8:5:6:a:b:c:d"})
    assert (await neighbour.start())["code"] == "rate_limited"
    elsewhere = await connect(server, channel["uuid"], headers={"X-Forwarded-For": "2001:db8:5:7::1"})
    assert (await elsewhere.start())["type"] == "chat_started"
