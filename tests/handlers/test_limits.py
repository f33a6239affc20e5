"""Issue 5 items 9 and 10: the origin allow-list and the limits, through real sockets."""

import asyncio
import json

import pytest
from tornado.httpclient import HTTPClientError

from services.config import Config, parse

SHOP = "https://shop.example.com"


async def refused(connect, server, channel_uuid, headers=None) -> tuple[int, dict]:
    """The HTTP status and JSON body of a socket chip refuses to open."""
    with pytest.raises(HTTPClientError) as e:
        await connect(server, channel_uuid, headers=headers)
    return e.value.code, json.loads(e.value.response.body)


async def test_listed_origins_connect_and_others_get_a_json_403(start_chip, channel, connect):
    server = await start_chip(allowed_origins=(SHOP, "https://example.org"))
    for origin in [SHOP, "HTTPS://Shop.Example.COM", "https://example.org/"]:
        visitor = await connect(server, channel["uuid"], headers={"Origin": origin})
        assert (await visitor.start())["type"] == "chat_started"
    for origin in ["https://evil.example.com", "http://shop.example.com", "https://shop.example.com:8443", "null"]:
        assert await refused(connect, server, channel["uuid"], {"Origin": origin}) == (
            403,
            {"error": "origin not allowed"},
        )


async def test_without_a_list_any_origin_connects(chip_server, channel, connect):
    visitor = await connect(chip_server, channel["uuid"], headers={"Origin": "https://anywhere.example"})
    assert (await visitor.start())["type"] == "chat_started"


async def test_a_client_without_origin_header_is_no_browser_and_connects(start_chip, channel, connect):
    server = await start_chip(allowed_origins=(SHOP,))
    visitor = await connect(server, channel["uuid"])
    assert (await visitor.start())["type"] == "chat_started"


async def test_frame_over_max_message_bytes_closes_with_1009(start_chip, channel, connect):
    server = await start_chip(max_message_bytes=1024)
    visitor = await connect(server, channel["uuid"])
    await visitor.start()
    await visitor.send({"type": "send_msg", "text": "x" * 1000})  # a frame just under the limit is fine
    await visitor.send({"type": "send_msg", "text": "x" * 1100})
    assert await asyncio.wait_for(visitor.conn.read_message(), 5) is None
    assert visitor.conn.close_code == 1009


def test_default_frame_limit_is_64_kib(chip_server):
    assert Config().max_message_bytes == 64 * 1024
    assert chip_server.server.request_callback.settings["websocket_max_message_size"] == 64 * 1024


async def test_text_over_max_text_length_is_too_large_and_not_sent(start_chip, channel, connect, courier):
    server = await start_chip(max_text_length=10)
    visitor = await connect(server, channel["uuid"])
    chat_id = (await visitor.start())["chat_id"]
    await visitor.send({"type": "send_msg", "text": "é" * 11})
    assert await visitor.expect("error") == {
        "type": "error",
        "code": "too_large",
        "error": "text is longer than 10 characters",
    }
    await visitor.send({"type": "send_msg", "text": "é" * 10})
    await courier.wait_for(lambda: courier.of_type("msg_in", chat_id))
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", chat_id)] == ["é" * 10]


async def test_acks_of_pushed_messages_are_free_but_other_acks_are_not(start_chip, channel, connect, post_msg):
    server = await start_chip(command_rate=0.1, command_burst=3)
    visitor = await connect(server, channel["uuid"])
    chat_id = (await visitor.start())["chat_id"]  # 1 token
    for i in range(1, 11):
        await post_msg(channel["uuid"], chat_id, {"id": i, "text": f"m{i}", "origin": "flow"}, server=server)
    for i in range(1, 11):  # ten acks, far past the burst
        assert (await visitor.expect("chat_out"))["msg_out"]["id"] == i
        await visitor.send({"type": "ack_chat", "msg_id": i})
    await visitor.silent(0.3)
    for _ in range(2):  # 2, 3: acks of nothing this socket was sent
        await visitor.send({"type": "ack_chat", "msg_id": 999})
    await visitor.send({"type": "ack_chat", "msg_id": 999})
    assert (await visitor.expect("error"))["code"] == "rate_limited"


async def test_commands_past_the_burst_are_rate_limited_then_allowed_again(start_chip, channel, connect):
    server = await start_chip(command_rate=5, command_burst=3)
    visitor = await connect(server, channel["uuid"])
    await visitor.start()  # 1
    for _ in range(2):  # 2, 3
        await visitor.send({"type": "get_history", "before": "2030-01-01T00:00:00Z"})
        await visitor.expect("history")
    await visitor.send({"type": "get_history", "before": "2030-01-01T00:00:00Z"})
    event = await visitor.expect("error")
    assert event["code"] == "rate_limited" and "slow down" in event["error"]
    await asyncio.sleep(0.3)  # 5 a second refills one token in 0.2 s
    await visitor.send({"type": "get_history", "before": "2030-01-01T00:00:00Z"})
    await visitor.expect("history")


async def test_rate_is_per_socket(start_chip, channel, connect):
    server = await start_chip(command_rate=0.1, command_burst=1)
    first = await connect(server, channel["uuid"])
    await first.start()
    await first.send("{}")
    assert (await first.expect("error"))["code"] == "rate_limited"
    second = await connect(server, channel["uuid"])
    assert (await second.start())["type"] == "chat_started"


async def test_new_chats_per_ip_are_limited_per_channel_and_shared_by_processes(
    start_chip, channel, connect, rows, courier
):
    first, second = await start_chip(new_chats_per_ip=2), await start_chip(new_chats_per_ip=2)
    started = [(await (await connect(server, channel["uuid"])).start())["chat_id"] for server in (first, second)]
    visitor = await connect(first, channel["uuid"])
    event = await visitor.start()
    assert event["type"] == "error" and event["code"] == "rate_limited"
    assert "more than 2 new chats from this address in 60 s" in event["error"]
    assert len(courier.of_type("chat_started")) == 2
    # the refused socket still works, and resuming a chat is no new chat
    assert (await visitor.start(started[0]))["type"] == "chat_resumed"
    other_channel = rows.channel(channel["org_id"])
    assert (await (await connect(second, other_channel)).start())["type"] == "chat_started"


async def test_new_chat_window_expires(start_chip, channel, connect):
    server = await start_chip(new_chats_per_ip=1, new_chats_window=1)
    assert (await (await connect(server, channel["uuid"])).start())["type"] == "chat_started"
    assert (await (await connect(server, channel["uuid"])).start())["code"] == "rate_limited"
    await asyncio.sleep(1.5)
    assert (await (await connect(server, channel["uuid"])).start())["type"] == "chat_started"


async def test_sockets_per_ip_are_limited_with_a_json_429_and_freed_on_close(start_chip, channel, connect):
    server = await start_chip(max_sockets_per_ip=2)
    first = await connect(server, channel["uuid"])
    await connect(server, channel["uuid"])
    status, body = await refused(connect, server, channel["uuid"])
    assert status == 429 and body == {"error": "more than 2 open sockets from this address"}
    first.close()
    for _ in range(50):  # the server notices the close a moment later
        try:
            await connect(server, channel["uuid"])
            break
        except HTTPClientError:
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("a closed socket was never freed")


async def test_forwarded_headers_are_ignored_unless_the_peer_is_a_trusted_proxy(start_chip, channel, connect):
    server = await start_chip(max_sockets_per_ip=1, new_chats_per_ip=1)
    await connect(server, channel["uuid"], headers={"X-Forwarded-For": "203.0.113.1"})
    # a spoofed header does not make the same client someone else
    for headers in [{"X-Forwarded-For": "203.0.113.2"}, {"X-Real-IP": "203.0.113.3"}]:
        assert (await refused(connect, server, channel["uuid"], headers))[0] == 429


async def test_behind_a_trusted_proxy_each_forwarded_client_is_counted_alone(start_chip, channel, connect):
    loopback = parse(["--trusted-proxies", "127.0.0.0/8"], environ={}).trusted_proxies
    server = await start_chip(max_sockets_per_ip=1, new_chats_per_ip=1, trusted_proxies=loopback)
    alice = await connect(server, channel["uuid"], headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.1"})
    bob = await connect(server, channel["uuid"], headers={"X-Real-IP": "203.0.113.2"})
    assert (await alice.start())["type"] == "chat_started"
    assert (await bob.start())["type"] == "chat_started"
    status, _ = await refused(connect, server, channel["uuid"], {"X-Forwarded-For": "203.0.113.1"})
    assert status == 429
