"""PostgreSQL or Redis briefly down: clear refusals while down, recovery without a restart."""

import asyncio
import json

import redis

from demo.rows import Rows
from services.backoff import Backoff


async def send(http, server, channel_uuid, chat_id, msg_id):
    body = {"chat_id": chat_id, "secret": "sesame", "msg": {"id": msg_id, "text": f"m{msg_id}", "origin": "flow"}}
    return await http(f"{server.url}/wc/send/{channel_uuid}/", method="POST", body=json.dumps(body))


async def test_redis_down_then_back(bound, spare_redis, start_chip, channel, connect, http, courier, tally):
    server = await start_chip(valkey=spare_redis.url)
    visitor = await bound(server, channel)
    assert (await send(http, server, channel["uuid"], visitor.chat_id, 1))[0] == 200
    received = [(await visitor.expect("chat_out"))["msg_out"]["id"]]
    await visitor.send({"type": "ack_chat", "msg_id": 1})
    await courier.wait_for(lambda: courier.of_type("msg_status"))

    spare_redis.stop()
    assert await send(http, server, channel["uuid"], visitor.chat_id, 2) == (
        503,
        {"error": "message store unavailable"},
    )
    await visitor.send({"type": "send_msg", "text": "anyone?"})
    assert await visitor.recv() == {"type": "error", "code": "unavailable", "error": "message store unavailable"}

    spare_redis.start()  # an empty Redis: what was acked is gone, nothing else was there
    for _ in range(100):  # Courier retries its 503s; chip answers as soon as Redis is back
        status, _ = await send(http, server, channel["uuid"], visitor.chat_id, 2)
        if status == 200:
            break
        await asyncio.sleep(0.1)
    assert status == 200
    # the socket is still bound and the wake-up subscription came back by itself
    received.append((await visitor.expect("chat_out", timeout=10))["msg_out"]["id"])
    await visitor.silent(0.3)
    assert received == [1, 2]
    await visitor.send({"type": "send_msg", "text": "back"})
    await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
    tally(
        "Redis stopped and restarted (Courier retries its 503)",
        sent=2,
        delivered=len(set(received)),
        duplicates=len(received) - len(set(received)),
    )


async def test_postgres_down_then_back(spare_postgres, start_chip, channel, connect, http, courier, rows):
    # the spare cluster holds this test's own org, channel and chats
    spare = Rows(spare_postgres.url)
    org_id = spare.org()
    channel_uuid = spare.channel(org_id)
    spare.contact(org_id, channel_uuid, "k" * 24, email="k@example.com")
    spare.close()
    server = await start_chip(db=spare_postgres.url)
    visitor = await connect(server, channel_uuid)
    assert (await visitor.start("k" * 24))["type"] == "chat_resumed"

    spare_postgres.stop()
    await visitor.send({"type": "get_history", "before": "2030-01-01T00:00:00Z"})
    assert await visitor.recv() == {"type": "error", "code": "unavailable", "error": "database unavailable"}
    # resumes waiting on the same read of the database each get the error, and keep their sockets
    others = [await connect(server, channel_uuid) for _ in range(3)]
    await asyncio.gather(*[other.send({"type": "start_chat", "chat_id": "k" * 24}) for other in others])
    for other in others:
        assert (await other.expect("error"))["code"] == "unavailable"
    status, body = await send(http, server, channel_uuid, "u" * 24, 1)  # a chat chip has not cached
    assert (status, body) == (503, {"error": "database unavailable"})

    spare_postgres.start()
    for _ in range(50):
        await visitor.send({"type": "get_history", "before": "2030-01-01T00:00:00Z"})
        event = await visitor.recv()
        if event["type"] == "history":
            break
        await asyncio.sleep(0.1)
    assert event == {"type": "history", "history": []}
    for other in others:
        assert (await other.start("k" * 24)) == {"type": "chat_resumed", "chat_id": "k" * 24, "email": "k@example.com"}
    assert (await send(http, server, channel_uuid, "k" * 24, 7))[0] == 200
    assert (await visitor.expect("chat_out"))["msg_out"]["id"] == 7


async def test_inbound_events_are_given_up_after_the_expiry(bound, start_chip, channel, connect, courier, caplog):
    server = await start_chip(inbound_expiry=0.5, retry=dict(courier=Backoff(0.05, 0.1), tick=0.05))
    visitor = await bound(server, channel)
    courier.fail_with = 500
    await visitor.send({"type": "send_msg", "text": "too late"})
    await asyncio.sleep(0.8)
    courier.fail_with = 0
    await visitor.send({"type": "send_msg", "text": "in time"})
    await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == ["in time"]
    assert "giving up 1 courier event(s) (msg_in)" in caplog.text


async def test_a_chat_resumed_while_redis_is_down_gets_its_messages_once_redis_is_back(
    spare_redis, start_chip, channel, connect, rows, http
):
    server = await start_chip(valkey=spare_redis.url)
    rows.contact(channel["org_id"], channel["uuid"], "q" * 24)
    spare_redis.stop()
    visitor = await connect(server, channel["uuid"])
    assert (await visitor.start("q" * 24))["type"] == "chat_resumed"  # PostgreSQL alone answers a resume
    spare_redis.start()
    for _ in range(100):
        status, _ = await send(http, server, channel["uuid"], "q" * 24, 1)
        if status == 200:
            break
        await asyncio.sleep(0.1)
    assert (await visitor.expect("chat_out", timeout=10))["msg_out"]["id"] == 1


async def test_an_outbox_read_that_fails_as_a_visitor_resumes_holds_nothing_back(
    spare_redis, start_chip, channel, connect, rows, http, tally
):
    # Redis accepts the subscription but not the outbox read (CLIENT PAUSE WRITE holds scripts past
    # chip's 5 s socket timeout); a message queued afterwards must not overtake the two waiting
    server = await start_chip(valkey=spare_redis.url)
    rows.contact(channel["org_id"], channel["uuid"], "p" * 24)
    for msg_id in (1, 2):
        assert (await send(http, server, channel["uuid"], "p" * 24, msg_id))[0] == 200
    store = redis.Redis.from_url(spare_redis.url)
    store.execute_command("CLIENT", "PAUSE", 5500, "WRITE")
    visitor = await connect(server, channel["uuid"])
    assert (await visitor.start("p" * 24))["type"] == "chat_resumed"
    await asyncio.sleep(6)  # the read timed out; Redis takes writes again
    assert (await send(http, server, channel["uuid"], "p" * 24, 3))[0] == 200
    received = [(await visitor.expect("chat_out", timeout=5))["msg_out"]["id"] for _ in range(3)]
    store.close()
    assert received == [1, 2, 3]
    tally("Outbox read timing out as a visitor resumes", sent=3, delivered=len(set(received)))
