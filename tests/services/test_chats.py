"""What a visitor's commands do (services/chats.py), Chats called directly over chip's other services,
with no socket handler in between: starting and resuming chats and the refusals, sending, acking,
history, the email, and the messages Courier queues for a chat."""

from datetime import datetime, timedelta, timezone

import pytest

from services.delivery.sessions import Session
from services.errors import ChatNotStarted, Forbidden, InvalidCommand, TooLarge, Unavailable
from services.store import keys
from tests.polling import wait_until
from tests.transport import Socket

LATER = datetime(2100, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
async def open_session(services, channel):
    """open_session() -> the Session of a new socket on the channel, as the WebSocket handler opens it;
    each is let go at teardown, as a closing socket is."""
    found = await services.lookups.channel(channel["uuid"])
    opened = []

    def open_one() -> Session:
        opened.append(Session(found, Socket(), remote_ip="127.0.0.1"))
        return opened[-1]

    yield open_one
    for session in opened:
        if session.bound:
            services.delivery.unbind(session)


async def started(services, open_session) -> Session:
    """A session whose new chat Courier has taken (its contact exists)."""
    session = open_session()
    await services.chats.start_chat(session)
    return session


async def test_a_new_chat_is_told_to_courier_and_gets_the_chats_messages(services, open_session, courier, channel):
    session = open_session()
    reply = await services.chats.start_chat(session)
    assert reply == {"type": "chat_started", "chat_id": session.chat_id}
    assert len(session.chat_id) == 24 and session.chat_id.isalnum()
    assert courier.of_type("chat_started", session.chat_id) == [{"type": "chat_started"}]
    found = await services.lookups.channel(channel["uuid"])
    assert await services.chats.queue_msg_out(
        found, session.chat_id, "sesame", {"id": 1, "text": "welcome", "origin": "flow"}
    )
    assert await wait_until(lambda: session.transport.events("chat_out")), "the new chat's socket got no message"
    assert [e["msg_out"]["text"] for e in session.transport.events("chat_out")] == ["welcome"]


async def test_a_known_chat_is_resumed_with_the_visitors_email(services, open_session, channel, rows, courier):
    chat_id = "r" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id, email="urn@example.com")
    session = open_session()
    assert await services.chats.start_chat(session, chat_id) == {
        "type": "chat_resumed",
        "chat_id": chat_id,
        "email": "urn@example.com",
    }
    assert session.chat_id == chat_id
    assert courier.of_type("chat_started") == [], "resuming a chat told Courier of a new one"
    # asked again on the same socket, it answers with the chat it holds
    assert (await services.chats.start_chat(session, "o" * 24))["chat_id"] == chat_id


@pytest.mark.parametrize("chat_id", ["short", "r" * 23 + "!", "z" * 24])  # malformed, and one no contact has
async def test_a_chat_id_that_names_no_chat_starts_a_new_one(services, open_session, channel, rows, chat_id):
    rows.contact(channel["org_id"], channel["uuid"], "r" * 24)
    session = open_session()
    reply = await services.chats.start_chat(session, chat_id)
    assert reply["type"] == "chat_started" and reply["chat_id"] not in (chat_id, "r" * 24)


async def test_a_blocked_contacts_chat_is_refused_and_a_stopped_ones_starts_anew(services, open_session, channel, rows):
    rows.contact(channel["org_id"], channel["uuid"], "b" * 24, status="B")
    rows.contact(channel["org_id"], channel["uuid"], "s" * 24, status="S")
    blocked = open_session()
    with pytest.raises(Forbidden):
        await services.chats.start_chat(blocked, "b" * 24)
    assert not blocked.bound
    stopped = open_session()
    reply = await services.chats.start_chat(stopped, "s" * 24)
    assert reply["type"] == "chat_started" and reply["chat_id"] != "s" * 24


async def test_a_start_courier_refuses_leaves_the_session_free_to_start_again(services, open_session, courier):
    session = open_session()
    courier.fail_with = 400  # a wrong secret: Courier refuses for good
    with pytest.raises(Unavailable):
        await services.chats.start_chat(session)
    assert not session.bound
    courier.fail_with = 0
    assert (await services.chats.start_chat(session))["type"] == "chat_started"


@pytest.mark.parametrize(
    "command, args",
    [
        ("send_msg", ("hello",)),
        ("ack_chat", (1,)),
        ("get_history", (LATER,)),
        ("set_email", ("visitor@example.com",)),
    ],
)
async def test_commands_before_start_chat_are_refused(services, open_session, courier, command, args):
    with pytest.raises(ChatNotStarted) as refused:
        await getattr(services.chats, command)(open_session(), *args)
    assert refused.value.code == "chat_not_started"
    assert courier.requests == []


async def test_a_visitors_message_reaches_courier_and_one_too_long_is_refused(services, open_session, courier):
    session = await started(services, open_session)
    await services.chats.send_msg(session, "hello")
    await courier.wait_for(lambda: courier.of_type("msg_in", session.chat_id))
    assert courier.of_type("msg_in", session.chat_id) == [{"type": "msg_in", "msg": {"text": "hello"}}]
    with pytest.raises(TooLarge):
        await services.chats.send_msg(session, "x" * (services.config.max_text_length + 1))


async def test_an_ack_empties_the_outbox_and_courier_hears_delivered(services, open_session, courier, channel, store):
    session = await started(services, open_session)
    found = await services.lookups.channel(channel["uuid"])
    await services.chats.queue_msg_out(found, session.chat_id, "sesame", {"id": 8, "text": "hi", "origin": "flow"})
    await services.chats.ack_chat(session, 8)
    await services.chats.ack_chat(session, 4242)  # an unknown id is no error, and tells Courier nothing
    assert store.zcard(keys.outbox_order(session.key)) == 0
    await courier.wait_for(lambda: courier.of_type("msg_status", session.chat_id))
    assert courier.of_type("msg_status", session.chat_id) == [
        {"type": "msg_status", "status": {"msg_id": 8, "status": "delivered"}}
    ]


async def test_history_is_the_chats_messages_before_a_moment_newest_first(services, open_session, channel, rows):
    chat_id = "h" * 24
    contact_id = rows.contact(channel["org_id"], channel["uuid"], chat_id)
    asked = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    rows.msg(contact_id, "hello", direction="I", created_on=asked - timedelta(minutes=2))
    rows.msg(contact_id, "hi, how can we help?", created_on=asked - timedelta(minutes=1))
    rows.msg(contact_id, "later", direction="I", created_on=asked)
    session = open_session()
    await services.chats.start_chat(session, chat_id)
    history = await services.chats.get_history(session, asked)
    assert history["type"] == "history"
    assert [next(iter(item.values()))["text"] for item in history["history"]] == ["hi, how can we help?", "hello"]
    assert [next(iter(item)) for item in history["history"]] == ["msg_out", "msg_in"]


async def test_an_email_is_kept_with_the_chat_and_shown_in_rapidpro(services, open_session, rows):
    session = await started(services, open_session)
    await services.chats.set_email(session, "visitor@example.com")
    assert rows.one("SELECT display FROM contacts_contacturn WHERE path = %s", session.chat_id) == (
        "visitor@example.com",
    )
    rows.one("UPDATE contacts_contacturn SET display = NULL WHERE path = %s", session.chat_id)  # as Courier does
    again = open_session()
    assert (await services.chats.start_chat(again, session.chat_id))["email"] == "visitor@example.com"


async def test_an_email_for_a_chat_courier_has_not_created_yet_is_refused(services, open_session):
    session = open_session()
    session.bind("y" * 24)  # bound to a chat whose contact does not exist (yet)
    with pytest.raises(Unavailable):
        await services.chats.set_email(session, "visitor@example.com")


async def test_courier_messages_are_refused_for_a_wrong_secret_or_an_unknown_chat(services, channel, rows):
    rows.contact(channel["org_id"], channel["uuid"], "k" * 24)
    found = await services.lookups.channel(channel["uuid"])
    msg = {"id": 3, "text": "hi", "origin": "flow"}
    with pytest.raises(InvalidCommand, match="secret"):
        await services.chats.queue_msg_out(found, "k" * 24, "open sesame", msg)
    with pytest.raises(InvalidCommand, match="no such chat"):
        await services.chats.queue_msg_out(found, "u" * 24, "sesame", msg)
    with pytest.raises(InvalidCommand, match="no such user"):
        await services.chats.queue_msg_out(found, "k" * 24, "sesame", {**msg, "user_id": 999_999})
    assert await services.chats.queue_msg_out(found, "k" * 24, "sesame", msg)
    assert not await services.chats.queue_msg_out(found, "k" * 24, "sesame", msg), "a repeat was queued as new"
