"""Outgoing messages under faults: a widget that never acks, a visitor who never comes back."""

import asyncio
import time
from email import message_from_string

import pytest
from aiosmtpd.controller import Controller
from tornado.testing import bind_unused_port

from services.backoff import Backoff
from services.store import keys
from tests.polling import wait_until


async def test_push_stops_after_max_attempts_and_resumes_on_the_next_visit(
    bound, start_chip, channel, connect, post_msg, caplog
):
    server = await start_chip(ack_timeout=0.1, max_attempts=3, retry=dict(repush=Backoff(0.1, 0.2)))
    visitor = await bound(server, channel)
    await post_msg(
        channel["uuid"], visitor.chat_id, {"id": 1, "text": "are you there?", "origin": "flow"}, server=server
    )
    copies = [await visitor.expect("chat_out", timeout=3) for _ in range(3)]
    assert {c["msg_out"]["id"] for c in copies} == {1}
    await visitor.silent(1.0)
    # the give-up is told to the operator once, in the log and in /metrics, at the retry loop's
    # next tick (once a second) after the last attempt's timeout
    await wait_until(lambda: "stopped pushing" in caplog.text, timeout=2)
    await visitor.silent(0.3)
    assert caplog.text.count("stopped pushing") == 1
    assert server.services.metrics.registry.get_sample_value("chip_messages_failed_total") == 1
    visitor.close()
    again = await bound(server, channel, visitor.chat_id)
    assert (await again.expect("chat_out"))["msg_out"]["id"] == 1
    await again.send({"type": "ack_chat", "msg_id": 1})


@pytest.fixture
def stale_chat(rows, channel):
    """A chat whose visitor left an email and is away."""
    chat_id = "s" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id, email="visitor@example.com")
    return chat_id


async def test_stale_messages_fail_without_smtp(store, start_chip, channel, stale_chat, post_msg, courier):
    server = await start_chip(msg_expiry=0.3)
    for i in (1, 2):
        await post_msg(channel["uuid"], stale_chat, {"id": i, "text": f"m{i}", "origin": "broadcast"}, server=server)
    await asyncio.sleep(0.4)
    assert await server.services.expiry.sweep() == 2
    await courier.wait_for(lambda: len(courier.of_type("msg_status", stale_chat)) == 2)
    assert [e["status"] for e in courier.of_type("msg_status", stale_chat)] == [
        {"msg_id": 1, "status": "failed"},
        {"msg_id": 2, "status": "failed"},
    ]
    client = store
    key = keys.chat_key(channel["uuid"], stale_chat)
    assert client.zcard(keys.outbox_order(key)) == 0
    assert client.zscore(keys.outboxes_of(key), key) is None


async def test_fresh_messages_are_kept(store, start_chip, channel, stale_chat, post_msg, courier):
    server = await start_chip(msg_expiry=60)
    await post_msg(channel["uuid"], stale_chat, {"id": 1, "text": "fresh", "origin": "flow"}, server=server)
    assert await server.services.expiry.sweep() == 0
    assert store.zcard(keys.outbox_order(keys.chat_key(channel["uuid"], stale_chat))) == 1


class Inbox:
    def __init__(self):
        self.messages = []
        self.delay = 0.0

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp_server():
    sock, port = bind_unused_port()
    sock.close()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.url = f"smtp://127.0.0.1:{port}/?from=chat@shop.example.com"
    yield inbox
    controller.stop()


async def test_stale_messages_are_emailed_and_reported_sent(
    start_chip, channel, stale_chat, post_msg, courier, rows, smtp_server
):
    user_id = rows.user(org_id=channel["org_id"])
    server = await start_chip(msg_expiry=0.3, smtp_url=smtp_server.url)
    await post_msg(
        channel["uuid"],
        stale_chat,
        {
            "uuid": "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "text": "Your order",
            "origin": "chat",
            "user_id": user_id,
            "attachments": ["image/jpeg:https://example.com/receipt.jpg"],
        },
        server=server,
    )
    await asyncio.sleep(0.4)
    assert await server.services.expiry.sweep() == 1
    await courier.wait_for(lambda: courier.of_type("msg_status", stale_chat))
    assert courier.of_type("msg_status", stale_chat) == [
        {"type": "msg_status", "status": {"msg_uuid": "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "status": "sent"}}
    ]
    given_up = server.services.metrics.registry.get_sample_value
    assert (
        given_up("chip_messages_given_up_total", {"status": "sent"}),
        given_up("chip_messages_given_up_total", {"status": "failed"}),
    ) == (1, 0)
    [(to, content)] = smtp_server.messages
    assert to == ["visitor@example.com"]
    assert "Bob McTickets: Your order" in content and "https://example.com/receipt.jpg" in content
    assert "From: chat@shop.example.com" in content


async def test_unreachable_smtp_reports_failed(start_chip, channel, stale_chat, post_msg, courier):
    sock, port = bind_unused_port()
    sock.close()
    server = await start_chip(msg_expiry=0.3, smtp_url=f"smtp://127.0.0.1:{port}")
    await post_msg(channel["uuid"], stale_chat, {"id": 3, "text": "x", "origin": "flow"}, server=server)
    await asyncio.sleep(0.4)
    assert await server.services.expiry.sweep() == 1
    await courier.wait_for(lambda: courier.of_type("msg_status", stale_chat))
    assert courier.of_type("msg_status", stale_chat)[0]["status"] == {"msg_id": 3, "status": "failed"}


async def test_a_slow_sweep_leaves_alone_the_lock_another_process_took_since(
    store, start_chip, channel, stale_chat, post_msg, courier, smtp_server
):
    smtp_server.delay = 1.0
    server = await start_chip(msg_expiry=0.3, smtp_url=smtp_server.url)
    await post_msg(channel["uuid"], stale_chat, {"id": 4, "text": "x", "origin": "flow"}, server=server)
    await asyncio.sleep(0.4)
    sweep = asyncio.ensure_future(server.services.expiry.sweep())
    lock = keys.expire_lock(keys.chat_key(channel["uuid"], stale_chat))
    await wait_until(lambda: store.exists(lock), timeout=1, interval=0.02)
    # as if this sweep's lock had run out and another process had taken the chat
    store.set(lock, "another process", px=10_000)
    assert await asyncio.wait_for(sweep, 10) == 1
    assert store.get(lock) == b"another process"


async def test_a_visitor_email_with_control_characters_affects_only_its_chat(
    start_chip, channel, rows, post_msg, courier, smtp_server
):
    """Issue 11 finding 2: such an address (stored before set_email refused them) made building the
    email raise and stopped every sweep at that chat. Now only that chat's messages fail."""
    rows.contact(channel["org_id"], channel["uuid"], "c" * 24, email='"a\x0bb"@x.com')
    rows.contact(channel["org_id"], channel["uuid"], "d" * 24, email="visitor@example.com")
    server = await start_chip(msg_expiry=0.3, smtp_url=smtp_server.url)
    for msg_id, chat_id in [(1, "c" * 24), (2, "d" * 24)]:  # the bad chat is swept first
        assert (
            await post_msg(channel["uuid"], chat_id, {"id": msg_id, "text": "hi", "origin": "flow"}, server=server)
        )[0] == 200
    await asyncio.sleep(0.4)
    assert await server.services.expiry.sweep() == 2
    await courier.wait_for(lambda: courier.of_type("msg_status", "c" * 24) and courier.of_type("msg_status", "d" * 24))
    assert courier.of_type("msg_status", "c" * 24)[0]["status"] == {"msg_id": 1, "status": "failed"}
    assert courier.of_type("msg_status", "d" * 24)[0]["status"] == {"msg_id": 2, "status": "sent"}
    assert [to for to, _ in smtp_server.messages] == [["visitor@example.com"]]


async def test_a_chat_that_cannot_be_swept_is_logged_and_the_others_are_swept(
    store, start_chip, channel, rows, post_msg, courier, caplog
):
    rows.contact(channel["org_id"], channel["uuid"], "e" * 24)
    rows.contact(channel["org_id"], channel["uuid"], "f" * 24)
    server = await start_chip(msg_expiry=0.3)
    for msg_id, chat_id in [(1, "e" * 24), (2, "f" * 24)]:
        await post_msg(channel["uuid"], chat_id, {"id": msg_id, "text": "hi", "origin": "flow"}, server=server)
    broken = keys.chat_key(channel["uuid"], "e" * 24)
    store.hset(keys.outbox_frames(broken), "1", b"not a frame")
    await asyncio.sleep(0.4)
    swept_at = time.time()
    assert await server.services.expiry.sweep() == 1
    await courier.wait_for(lambda: courier.of_type("msg_status", "f" * 24))
    assert [r.getMessage() for r in caplog.records if r.exc_info] == [
        f"could not give up the stale messages of chat={broken}; trying it again after --msg-expiry"
    ]
    # it waits another expiry, behind every chat that went stale before the sweep
    assert store.zscore(keys.outboxes_of(broken), broken) >= swept_at
    assert await server.services.expiry.sweep() == 0


async def test_a_channel_name_with_a_newline_keeps_the_subject_one_line(
    start_chip, channel, stale_chat, post_msg, courier, rows, smtp_server
):
    rows.one(
        "UPDATE channels_channel SET name = %s WHERE uuid = %s RETURNING id",
        "Shop\r\nBcc: everyone@example.com",
        channel["uuid"],
    )
    server = await start_chip(msg_expiry=0.3, smtp_url=smtp_server.url)
    await post_msg(channel["uuid"], stale_chat, {"id": 5, "text": "Your order", "origin": "flow"}, server=server)
    await asyncio.sleep(0.4)
    assert await server.services.expiry.sweep() == 1
    await courier.wait_for(lambda: courier.of_type("msg_status", stale_chat))
    assert courier.of_type("msg_status", stale_chat)[0]["status"] == {"msg_id": 5, "status": "sent"}
    [(to, content)] = smtp_server.messages
    assert to == ["visitor@example.com"]
    email = message_from_string(content)
    assert email["Subject"] == "Your messages from Shop Bcc: everyone@example.com"
    assert email["Bcc"] is None


async def test_the_email_survives_courier_resetting_the_urn_and_reaches_stale_messages(
    start_chip, channel, bound, connect, post_msg, courier, rows, smtp_server
):
    server = await start_chip(msg_expiry=0.3, smtp_url=smtp_server.url)
    visitor = await bound(server, channel)
    chat_id = visitor.chat_id
    await visitor.send({"type": "set_email", "email": "ann@example.com"})
    await visitor.send({"type": "send_msg", "text": "hello"})
    await courier.wait_for(lambda: courier.of_type("msg_in", chat_id))
    # Courier rewrote the URN when it handled the msg_in, as it does on every incoming message
    assert rows.one("SELECT display FROM contacts_contacturn WHERE path = %s", chat_id) == (None,)
    visitor.close()
    again = await connect(server, channel["uuid"])
    assert await again.start(chat_id) == {"type": "chat_resumed", "chat_id": chat_id, "email": "ann@example.com"}
    again.close()
    await post_msg(channel["uuid"], chat_id, {"id": 31, "text": "We replied", "origin": "flow"}, server=server)
    await asyncio.sleep(0.4)
    assert await server.services.expiry.sweep() == 1
    [(to, content)] = smtp_server.messages
    assert to == ["ann@example.com"] and "We replied" in content


async def test_a_visitor_who_stopped_since_is_not_emailed(
    start_chip, channel, stale_chat, post_msg, courier, rows, smtp_server
):
    """A contact who opted out (status S) after the message was queued gets no email: Courier hears failed."""
    server = await start_chip(msg_expiry=0.3, smtp_url=smtp_server.url)
    assert (
        await post_msg(channel["uuid"], stale_chat, {"id": 41, "text": "Your order", "origin": "flow"}, server=server)
    )[0] == 200
    rows.one(
        "UPDATE contacts_contact SET status = 'S' FROM contacts_contacturn u"
        " WHERE u.contact_id = contacts_contact.id AND u.path = %s RETURNING contacts_contact.id",
        stale_chat,
    )
    await asyncio.sleep(0.4)
    assert await server.services.expiry.sweep() == 1
    await courier.wait_for(lambda: courier.of_type("msg_status", stale_chat))
    assert courier.of_type("msg_status", stale_chat)[0]["status"] == {"msg_id": 41, "status": "failed"}
    assert smtp_server.messages == [], "a contact who stopped was emailed"
