"""Issue 11 findings 1, 5 and 7: what anyone with a channel UUID could do to /wc/send (huge bodies,
lists of a million items, a NUL or a newline in the chat ID) and the bounds Courier works within."""

import asyncio
import json
import logging

import orjson

MSG = {"id": 1, "text": "x", "origin": "flow"}


async def raw_request(server, head: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send a request through a plain socket (only the bytes given, whatever Content-Length says)
    and read until chip closes: (status, JSON body, anything that followed the answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)  # read() returns once chip closes
    finally:
        writer.close()
    header, _, rest = answer.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in header.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    return int(header.split()[1]), json.loads(rest[:length]), rest[length:]


def post_head(channel_uuid: str, length: int) -> str:
    return (
        f"POST /wc/send/{channel_uuid}/ HTTP/1.1\r\nHost: chip\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )


async def test_a_body_over_the_limit_is_413_before_it_is_sent(chip_server, channel):
    # 30 MiB announced, 1 KiB sent: the answer comes without chip waiting for (or reading) the rest
    status, body, after = await raw_request(chip_server, post_head(channel["uuid"], 30 * 1024 * 1024), b"{" * 1024)
    assert (status, body, after) == (413, {"error": "request body is larger than 262144 bytes"}, b"")


async def test_an_unknown_channel_is_refused_before_the_body_is_sent(chip_server):
    status, body, _ = await raw_request(chip_server, post_head("8291264a-4581-4d12-96e5-e9fcfa6e68d9", 200_000))
    assert (status, body) == (400, {"error": "no such channel"})


async def test_a_chunked_body_over_the_limit_is_cut_off(start_chip, channel):
    server = await start_chip(max_body_bytes=1000)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        (
            f"POST /wc/send/{channel['uuid']}/ HTTP/1.1\r\nHost: chip\r\nTransfer-Encoding: chunked\r\n\r\n"
            "800\r\n" + "x" * 2048 + "\r\n"
        ).encode()
    )
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_a_million_items_with_a_wrong_secret_get_one_short_error(start_chip, channel, http, caplog):
    """The attack of finding 1: the lists are counted before any item is looked at, and the error
    names the first problem, not every element's."""
    server = await start_chip(max_body_bytes=8 * 1024 * 1024)
    body = orjson.dumps(
        {
            "chat_id": "a" * 24,
            "secret": "wrong",
            "msg": {**MSG, "attachments": [1] * 1_000_000, "quick_replies": [None] * 1_000_000},
        }
    )
    assert len(body) > 6_000_000
    status, reply = await http(f"{server.url}/wc/send/{channel['uuid']}/", method="POST", body=body)
    assert (status, reply) == (400, {"error": "msg.attachments: more than 10 items"})


async def test_lists_are_bounded_in_length_and_items(start_chip, channel, rows, post_msg):
    server = await start_chip(max_list_items=3)
    rows.contact(channel["org_id"], channel["uuid"], "L" * 24)
    status, body = await post_msg(
        channel["uuid"], "L" * 24, {**MSG, "quick_replies": ["a", "b", "c", "d"]}, server=server
    )
    assert (status, body) == (400, {"error": "msg.quick_replies: more than 3 items"})
    status, body = await post_msg(channel["uuid"], "L" * 24, {**MSG, "attachments": ["x" * 2049]}, server=server)
    assert (status, body) == (400, {"error": "msg.attachments.0: longer than 2048 characters"})
    status, body = await post_msg(
        channel["uuid"], "L" * 24, {**MSG, "attachments": [1, 2, 3], "quick_replies": [4]}, server=server
    )
    assert status == 400 and body["error"].endswith("; and 1 more"), body
    status, _ = await post_msg(
        channel["uuid"],
        "L" * 24,
        {**MSG, "attachments": ["image/png:" + "x" * 2038] * 3, "quick_replies": ["a", "b", "c"]},
        server=server,
    )
    assert status == 200


async def test_a_nul_or_newline_in_the_chat_id_is_a_400_and_no_traceback(chip_server, channel, rows, post_msg, caplog):
    """Finding 5: these reached PostgreSQL, which refused the NUL: a 503 (Courier retries) and two
    tracebacks per request. Python's `$` also let a trailing newline through."""
    rows.contact(channel["org_id"], channel["uuid"], "n" * 24)
    for chat_id in [
        "n" * 24 + ":\x00@example.com",
        "n" * 24 + ":a@b\x00",
        "n" * 24 + "\n",
        "n" * 24 + ":a@b.com\n",
        "n" * 24 + ":a\x0bb@x.com",
    ]:
        for secret in ["sesame", "wrong"]:
            status, body = await post_msg(channel["uuid"], chat_id, MSG, secret=secret)
            assert (status, body) == (400, {"error": "chat_id: not a valid chat ID"}), chat_id
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert (await post_msg(channel["uuid"], "n" * 24, MSG))[0] == 200


async def test_the_outbox_of_a_chat_is_bounded(start_chip, channel, connect, post_msg):
    server = await start_chip(max_outbox=2)
    visitor = await connect(server, channel["uuid"])
    chat_id = (await visitor.start())["chat_id"]
    for msg_id in (1, 2):
        assert (await post_msg(channel["uuid"], chat_id, {**MSG, "id": msg_id}, server=server))[0] == 200
    status, body = await post_msg(channel["uuid"], chat_id, {**MSG, "id": 3}, server=server)
    assert (status, body) == (413, {"error": "the chat's outbox is full: 2 messages wait for the visitor"})
    # Courier repeating a message already queued is still a success
    assert await post_msg(channel["uuid"], chat_id, {**MSG, "id": 2}, server=server) == (200, {"status": "queued"})
    assert (await visitor.expect("chat_out"))["msg_out"]["id"] == 1
    await visitor.send({"type": "ack_chat", "msg_id": 1})
    for _ in range(50):  # the ack is applied a moment after it is sent
        status, _ = await post_msg(channel["uuid"], chat_id, {**MSG, "id": 3}, server=server)
        if status == 200:
            break
        await asyncio.sleep(0.05)
    assert status == 200


async def test_a_content_length_of_other_digits_is_a_400_and_no_traceback(chip_server, channel, caplog):
    """'²' (latin-1 0xb2) is a digit to Python's isdigit() and not to int()."""
    head = f"POST /wc/send/{channel['uuid']}/ HTTP/1.1\r\nHost: chip\r\nContent-Length: ".encode() + b"\xb2\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", chip_server.port)
    try:
        writer.write(head)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert int(answer.split()[1]) == 400, answer
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_a_body_that_never_comes_is_not_waited_for_at_shutdown(chip_server, channel):
    """A /wc/send whose client leaves mid-body is never answered: a graceful stop must not wait for it."""
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", chip_server.port)
        writer.write(post_head(channel["uuid"], 1000).encode() + b'{"chat_id": ')
        await writer.drain()
        await asyncio.sleep(0.2)  # chip has taken the headers and counted the request in flight
        writer.close()
    assert await chip_server.services.readiness.drain(3) == 0, "requests whose client left are still counted"
