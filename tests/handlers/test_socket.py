"""The widget's side of protocol.md §1, through real WebSockets."""

import asyncio
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect

from models.schema import GENERATIONS
from services import lookups

CHAT_ID = re.compile(r"[a-zA-Z0-9]{24}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

# RapidPro's tables at both ends of the releases with CHP
pytestmark = pytest.mark.parametrize("generation", GENERATIONS, indirect=True)


async def test_start_chat_creates_contact_through_courier(chip_server, channel, connect, courier, rows):
    visitor = await connect(chip_server, channel["uuid"])
    event = await visitor.start()
    assert event["type"] == "chat_started"
    assert CHAT_ID.fullmatch(event["chat_id"])
    assert courier.of_type("chat_started", event["chat_id"]) == [{"type": "chat_started"}]
    # Courier's 200 came before the reply, so the contact exists now
    urn = rows.one(
        "SELECT contact_id, path FROM contacts_contacturn WHERE identity = %s", f"webchat:{event['chat_id']}"
    )
    assert urn[1] == event["chat_id"] and urn[0] is not None


async def test_new_chat_ids_are_distinct(chip_server, channel, connect):
    ids = set()
    for _ in range(5):
        visitor = await connect(chip_server, channel["uuid"])
        ids.add((await visitor.start())["chat_id"])
    assert len(ids) == 5


async def test_resume_returns_email_and_tells_courier_nothing(chip_server, channel, connect, courier, rows):
    chat_id = "65vbbDAQCdPdEWlEhDGy4utO"
    rows.contact(channel["org_id"], channel["uuid"], chat_id, email="bob@nyaruka.com")
    visitor = await connect(chip_server, channel["uuid"])
    assert await visitor.start(chat_id) == {"type": "chat_resumed", "chat_id": chat_id, "email": "bob@nyaruka.com"}
    assert courier.events == []


async def test_resume_without_email_gives_empty_email(chip_server, channel, connect, rows):
    chat_id = "a" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    visitor = await connect(chip_server, channel["uuid"])
    assert await visitor.start(chat_id) == {"type": "chat_resumed", "chat_id": chat_id, "email": ""}


@pytest.mark.parametrize("chat_id", ["b" * 24, "short", "!" * 24, 12345, None])
async def test_unknown_or_malformed_chat_id_starts_a_new_chat(chip_server, channel, connect, chat_id):
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.send({"type": "start_chat", "chat_id": chat_id})
    event = await visitor.expect("chat_started")
    assert event["chat_id"] != chat_id and CHAT_ID.fullmatch(event["chat_id"])


async def test_cannot_resume_a_chat_of_another_org(chip_server, channel, connect, rows):
    other_org = rows.org("Other")
    other_channel = rows.channel(other_org)
    chat_id = "c" * 24
    rows.contact(other_org, other_channel, chat_id, email="secret@other.org")
    visitor = await connect(chip_server, channel["uuid"])
    event = await visitor.start(chat_id)
    assert event["type"] == "chat_started" and event["chat_id"] != chat_id
    await visitor.send({"type": "get_history", "before": "2030-01-01T00:00:00Z"})
    assert (await visitor.expect("history"))["history"] == []
    # on its own org's channel the same chat resumes
    own = await connect(chip_server, other_channel)
    assert await own.start(chat_id) == {"type": "chat_resumed", "chat_id": chat_id, "email": "secret@other.org"}


async def test_visitors_resuming_at_once_each_get_their_own_chat(chip_server, channel, connect, rows):
    # as after a restart, all at once: the resumes that reach chip in one turn share one read
    org_id = channel["org_id"]
    emails = {f"{i:024d}": f"v{i}@example.com" for i in range(10)}
    plain = [f"{i:0>24}".replace("0", "e") for i in range(10, 20)]
    for chat_id, email in emails.items():
        rows.contact(org_id, channel["uuid"], chat_id, email=email)
    rows.contacts(org_id, channel["uuid"], plain)
    other_org = rows.org("Other")
    other_channel = rows.channel(other_org)
    elsewhere = [f"{i:0>24}".replace("0", "x") for i in range(20, 25)]
    rows.contacts(other_org, other_channel, elsewhere)
    unknown = [f"{i:0>24}".replace("0", "u") for i in range(25, 30)]

    asked = list(emails) + plain + elsewhere + unknown
    visitors = [await connect(chip_server, channel["uuid"]) for _ in asked]
    own = [await connect(chip_server, other_channel) for _ in elsewhere]  # another org in the same turns
    await asyncio.gather(
        *[
            visitor.send({"type": "start_chat", "chat_id": chat_id})
            for visitor, chat_id in zip(visitors + own, asked + elsewhere)
        ]
    )
    answers = [await visitor.recv() for visitor in visitors + own]

    expected = [{"type": "chat_resumed", "chat_id": c, "email": e} for c, e in emails.items()]
    expected += [{"type": "chat_resumed", "chat_id": c, "email": ""} for c in plain]
    assert answers[:20] == expected
    # chats of another org, or of nobody, are not resumed here: each visitor gets a new chat
    assert all(a["type"] == "chat_started" and a["chat_id"] not in asked for a in answers[20:30])
    assert answers[30:] == [{"type": "chat_resumed", "chat_id": c, "email": ""} for c in elsewhere]


async def test_second_start_chat_keeps_the_binding(chip_server, channel, connect, courier):
    visitor = await connect(chip_server, channel["uuid"])
    chat_id = (await visitor.start())["chat_id"]
    again = await visitor.start("d" * 24)
    assert again == {"type": "chat_resumed", "chat_id": chat_id, "email": ""}
    assert len(courier.of_type("chat_started")) == 1


async def test_send_msg_reaches_courier_as_msg_in(chip_server, channel, connect, courier, rows):
    visitor = await connect(chip_server, channel["uuid"])
    chat_id = (await visitor.start())["chat_id"]
    await visitor.send({"type": "send_msg", "text": "I need help!"})
    await courier.wait_for(lambda: courier.of_type("msg_in", chat_id))
    assert courier.of_type("msg_in", chat_id) == [{"type": "msg_in", "msg": {"text": "I need help!"}}]
    assert rows.one("SELECT text, direction FROM msgs_msg") == ("I need help!", "I")


async def test_messages_reach_courier_in_order(chip_server, channel, connect, courier):
    visitor = await connect(chip_server, channel["uuid"])
    chat_id = (await visitor.start())["chat_id"]
    for i in range(20):
        await visitor.send({"type": "send_msg", "text": f"m{i}"})
    await courier.wait_for(lambda: len(courier.of_type("msg_in", chat_id)) == 20)
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", chat_id)] == [f"m{i}" for i in range(20)]


@pytest.mark.parametrize(
    "command",
    [
        {"type": "send_msg", "text": "hi"},
        {"type": "ack_chat", "msg_id": 1},
        {"type": "get_history", "before": "2024-05-01T17:15:30.123456Z"},
        {"type": "set_email", "email": "bob@nyaruka.com"},
    ],
)
async def test_commands_before_start_chat_are_refused(chip_server, channel, connect, command):
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.send(command)
    event = await visitor.expect("error")
    assert event["code"] == "chat_not_started"
    assert event["error"]


@pytest.mark.parametrize(
    "frame, message",
    [
        ("not json", "frame is not valid JSON"),
        ("[1, 2]", "a command is a JSON object with a type"),
        ('{"text": "hi"}', "type: field is required"),
        ('{"type": "dance"}', "unknown command type: dance"),
        ('{"type": "send_msg"}', "text: field is required"),
        ('{"type": "send_msg", "text": ""}', "text: field may not be blank"),
        ('{"type": "send_msg", "text": 5}', "text: Not a valid string."),
        ('{"type": "ack_chat"}', "msg_id: field is required"),
        ('{"type": "ack_chat", "msg_id": true}', "msg_id: must be a message id (integer) or uuid (string)"),
        ('{"type": "ack_chat", "msg_id": "\u00b2"}', "msg_id: must be a message id (integer) or uuid (string)"),
        ('{"type": "ack_chat", "msg_id": "123456789012345678901"}', "msg_id: must be a message id"),
        ('{"type": "ack_chat", "msg_id": 9223372036854775808}', "msg_id: must be a positive 64-bit integer"),
        ('{"type": "get_history", "before": "yesterday"}', "before: must be an RFC 3339 timestamp"),
        ('{"type": "set_email", "email": "bob"}', "email: not a valid email address"),
    ],
)
async def test_bad_commands_get_an_error_event_and_the_socket_lives(chip_server, channel, connect, frame, message):
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.start()
    await visitor.send(frame)
    event = await visitor.expect("error")
    assert event["code"] == "invalid_command"
    assert event["error"].startswith(message), event
    await visitor.send({"type": "send_msg", "text": "still here"})
    await visitor.send("{}")
    assert (await visitor.expect("error"))["code"] == "invalid_command"


async def test_a_bad_frame_does_not_affect_another_visitor(chip_server, channel, connect, post_msg):
    good = await connect(chip_server, channel["uuid"])
    chat_id = (await good.start())["chat_id"]
    bad = await connect(chip_server, channel["uuid"])
    await bad.start()
    for frame in ["{", "null", '{"type": 1}', "x" * 1000]:
        await bad.send(frame)
        await bad.expect("error")
    assert (await post_msg(channel["uuid"], chat_id, {"id": 7, "text": "hello", "origin": "flow"}))[0] == 200
    assert (await good.expect("chat_out"))["msg_out"]["text"] == "hello"


async def test_set_email_stores_display_and_touches_contact(chip_server, channel, connect, rows):
    chat_id = "e" * 24
    contact_id = rows.contact(channel["org_id"], channel["uuid"], chat_id)
    before = rows.one("SELECT modified_on FROM contacts_contact WHERE id = %s", contact_id)[0]
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.start(chat_id)
    await visitor.send({"type": "set_email", "email": "visitor@example.com"})
    await visitor.silent()
    assert rows.one("SELECT display FROM contacts_contacturn WHERE path = %s", chat_id)[0] == "visitor@example.com"
    assert rows.one("SELECT modified_on FROM contacts_contact WHERE id = %s", contact_id)[0] > before
    # and a later resume reports it
    again = await connect(chip_server, channel["uuid"])
    assert (await again.start(chat_id))["email"] == "visitor@example.com"


async def test_set_email_too_long_is_refused(chip_server, channel, connect):
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.start()
    await visitor.send({"type": "set_email", "email": "a" * 120 + "@example.com"})
    event = await visitor.expect("error")
    assert event["code"] == "invalid_command" and "128" in event["error"]


async def test_history_newest_first_with_origins_and_users(chip_server, channel, connect, rows):
    chat_id = "f" * 24
    contact_id = rows.contact(channel["org_id"], channel["uuid"], chat_id)
    user_id = rows.user(avatar="avatars/bob.jpg", org_id=channel["org_id"])
    flow_id = 7
    base = datetime(2024, 4, 1, 13, 15, 30, 123456, tzinfo=timezone.utc)
    m_in = rows.msg(contact_id, "I need help!", direction="I", created_on=base)
    m_flow = rows.msg(
        contact_id,
        "Hi from a flow",
        created_on=base + timedelta(seconds=1),
        flow_id=flow_id,
        quick_replies=["Yes", "No"],
    )
    m_chat = rows.msg(
        contact_id,
        "Thanks!",
        created_on=base + timedelta(seconds=2),
        created_by_id=user_id,
        attachments=["image/jpeg:https://example.com/a.jpg"],
    )
    rows.msg(contact_id, "deleted", created_on=base + timedelta(seconds=3), visibility="D")
    rows.msg(contact_id, "after", created_on=base + timedelta(hours=1))
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.start(chat_id)
    await visitor.send({"type": "get_history", "before": "2024-04-01T13:20:00Z"})
    event = await visitor.expect("history")
    assert event["history"] == [
        {
            "msg_out": {
                "id": m_chat,
                "text": "Thanks!",
                "origin": "chat",
                "user": {
                    "id": user_id,
                    "name": "Bob McTickets",
                    "email": "bob@nyaruka.com",
                    "avatar": "https://cdn.test/media/avatars/bob.jpg",
                },
                "attachments": ["image/jpeg:https://example.com/a.jpg"],
                "time": "2024-04-01T13:15:32.123456Z",
            }
        },
        {
            "msg_out": {
                "id": m_flow,
                "text": "Hi from a flow",
                "origin": "flow",
                "quick_replies": ["Yes", "No"],
                "time": "2024-04-01T13:15:31.123456Z",
            }
        },
        {"msg_in": {"id": m_in, "text": "I need help!", "time": "2024-04-01T13:15:30.123456Z"}},
    ]


async def test_history_pages_25_at_a_time_strictly_before(chip_server, channel, connect, rows):
    chat_id = "g" * 24
    contact_id = rows.contact(channel["org_id"], channel["uuid"], chat_id)
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for i in range(30):
        rows.msg(contact_id, f"m{i}", created_on=base + timedelta(minutes=i))
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.start(chat_id)
    await visitor.send({"type": "get_history", "before": "2025-01-01T00:00:00Z"})
    page = (await visitor.expect("history"))["history"]
    assert [item["msg_out"]["text"] for item in page] == [f"m{i}" for i in range(29, 4, -1)]
    await visitor.send({"type": "get_history", "before": page[-1]["msg_out"]["time"]})
    rest = (await visitor.expect("history"))["history"]
    assert [item["msg_out"]["text"] for item in rest] == [f"m{i}" for i in range(4, -1, -1)]


async def test_unknown_channel_is_refused_with_json_400(chip_server, rows, channel):
    inactive = rows.channel(channel["org_id"], active=False)
    for channel_uuid in ["8291264a-4581-4d12-96e5-e9fcfa6e68d9", inactive, "not-a-uuid"]:
        with pytest.raises(HTTPClientError) as e:
            await websocket_connect(f"{chip_server.ws_url}/wc/connect/{channel_uuid}/")
        assert e.value.code == 400
        assert e.value.response.body == b'{"error":"no such channel"}'


async def test_plain_http_to_the_socket_is_refused_with_json_400(chip_server, channel, http):
    status, body = await http(f"{chip_server.url}/wc/connect/{channel['uuid']}/")
    assert status == 400 and "WebSocket" in body["error"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Upgrade": "websocket", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"},
        {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"},
        {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
    ],
)
async def test_half_an_upgrade_is_refused_with_json_400(chip_server, channel, http, headers):
    status, body = await http(f"{chip_server.url}/wc/connect/{channel['uuid']}/", headers=headers)
    assert (status, body) == (400, {"error": "this endpoint takes WebSocket connections only"})


async def test_trailing_slash_and_query_string_are_optional(chip_server, channel, connect):
    visitor = await connect(chip_server, channel["uuid"], path="/wc/connect/{}?chat_id=whatever")
    assert (await visitor.start())["type"] == "chat_started"


async def test_any_origin_may_connect(chip_server, channel):
    from tornado.httpclient import HTTPRequest

    request = HTTPRequest(
        f"{chip_server.ws_url}/wc/connect/{channel['uuid']}/", headers={"Origin": "https://shop.example.com"}
    )
    conn = await websocket_connect(request)
    try:
        await conn.write_message('{"type": "start_chat"}')
        assert b"chat_started" in (await asyncio.wait_for(conn.read_message(), 5)).encode()
    finally:
        conn.close()


async def test_unknown_path_is_a_json_404(chip_server, http):
    status, body = await http(chip_server.url + "/nothing/here")
    assert status == 404 and body == {"error": "no such endpoint"}


async def test_database_down_gives_unavailable_not_a_dead_socket(chip_server, channel, connect, database_down):
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.start()
    with database_down():
        await visitor.send({"type": "get_history", "before": "2030-01-01T00:00:00Z"})
        event = await visitor.expect("error")
        assert event["code"] == "unavailable"
    await visitor.send({"type": "get_history", "before": "2030-01-01T00:00:00Z"})
    assert (await visitor.expect("history"))["history"] == []


async def test_history_quick_replies_from_either_column_and_tickets(chip_server, channel, connect, rows, generation):
    chat_id = "q" * 24
    contact_id = rows.contact(channel["org_id"], channel["uuid"], chat_id)
    base = datetime(2024, 4, 1, tzinfo=timezone.utc)
    if generation == "v10.3.121":  # a text array; `text\nextra` until v26.1.15, then `text<extra>extra`
        rows.msg(
            contact_id,
            "Pick one",
            created_on=base,
            quick_replies=["Red", "Green\nLike grass", "<location>Where are you?", "Blue<extra>Sky"],
        )
        rows.msg(contact_id, "Ticket by id", created_on=base + timedelta(seconds=1), ticket_id=77)
        expected = ["Red", "Green", "Blue"]
    else:  # JSON objects; only text-type ones are quick replies the widget can send back
        rows.msg(
            contact_id,
            "Pick one",
            created_on=base,
            quickreplies=json.dumps(
                [
                    {"type": "text", "text": "Red"},
                    {"type": "text", "text": "Green", "extra": "Like grass"},
                    {"type": "location"},
                    {"type": "url", "text": "Visit us", "extra": "https://example.com"},
                ]
            ),
        )
        rows.msg(
            contact_id,
            "Ticket by uuid",
            created_on=base + timedelta(seconds=1),
            ticket_uuid="0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        )
        expected = ["Red", "Green"]
    rows.msg(contact_id, "Ticket, as RapidPro writes it now", created_on=base + timedelta(seconds=2), ticket=True)
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.start(chat_id)
    await visitor.send({"type": "get_history", "before": "2025-01-01T00:00:00Z"})
    history = [item["msg_out"] for item in (await visitor.expect("history"))["history"]]
    assert [(m["text"], m["origin"]) for m in history] == [
        ("Ticket, as RapidPro writes it now", "ticket"),
        (history[1]["text"], "ticket"),
        ("Pick one", "chat"),
    ]
    assert history[2]["quick_replies"] == expected
    assert "quick_replies" not in history[0]


async def test_history_shows_only_this_channels_messages(chip_server, channel, connect, rows):
    chat_id = "w" * 24
    contact_id = rows.contact(channel["org_id"], channel["uuid"], chat_id)
    whatsapp = rows.channel(channel["org_id"], channel_type="WA")
    on_whatsapp = rows.urn(contact_id, whatsapp, "whatsapp", "250788123123")
    rows.msg(contact_id, "on the web", direction="I")
    rows.msg(contact_id, "on whatsapp", direction="I", urn_id=on_whatsapp)
    rows.msg(contact_id, "reply on whatsapp", urn_id=on_whatsapp)
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.start(chat_id)
    await visitor.send({"type": "get_history", "before": "2100-01-01T00:00:00Z"})
    assert [item["msg_in"]["text"] for item in (await visitor.expect("history"))["history"]] == ["on the web"]


async def test_history_shows_only_users_the_org_may_show(chip_server, channel, connect, rows):
    chat_id = "u" * 24
    contact_id = rows.contact(channel["org_id"], channel["uuid"], chat_id)
    other_org = rows.org("Other")
    senders = {
        "member": rows.user("member@nyaruka.com", "Mia", org_id=channel["org_id"]),
        "staff": rows.user("staff@rapidpro.example", "Stan", staff=True),
        "another org's": rows.user("spy@other.example", "Sly", org_id=other_org),
        "deactivated": rows.user("gone@nyaruka.com", "Gus", org_id=channel["org_id"], active=False),
    }
    base = datetime(2024, 4, 1, tzinfo=timezone.utc)
    for i, (who, user_id) in enumerate(senders.items()):
        rows.msg(contact_id, who, created_on=base + timedelta(seconds=i), created_by_id=user_id)
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.start(chat_id)
    await visitor.send({"type": "get_history", "before": "2025-01-01T00:00:00Z"})
    shown = {
        item["msg_out"]["text"]: item["msg_out"].get("user", {}).get("name")
        for item in (await visitor.expect("history"))["history"]
    }
    assert shown == {"member": "Mia McTickets", "staff": "Stan McTickets", "another org's": None, "deactivated": None}


@pytest.mark.parametrize("status, active", [("S", True), ("A", False)])
async def test_a_stopped_or_deleted_contacts_chat_starts_anew(
    chip_server, channel, connect, courier, rows, status, active
):
    rows.contact(channel["org_id"], channel["uuid"], "x" * 24, email="x@example.com", status=status, active=active)
    visitor = await connect(chip_server, channel["uuid"])
    event = await visitor.start("x" * 24)
    assert event["type"] == "chat_started" and event["chat_id"] != "x" * 24
    assert courier.of_type("chat_started", event["chat_id"]) == [{"type": "chat_started"}]


async def test_a_blocked_contacts_chat_is_refused(chip_server, channel, connect, courier, rows):
    rows.contact(channel["org_id"], channel["uuid"], "y" * 24, status="B")
    visitor = await connect(chip_server, channel["uuid"])
    assert await visitor.start("y" * 24) == {"type": "error", "code": "forbidden", "error": "this chat was blocked"}
    assert courier.events == []
    await visitor.send({"type": "get_history", "before": "2100-01-01T00:00:00Z"})
    assert (await visitor.expect("error"))["code"] == "chat_not_started"


async def test_a_contact_blocked_while_chatting_gets_no_history_once_the_cache_expires(
    start_chip, channel, connect, rows, monkeypatch
):
    monkeypatch.setattr(lookups, "CHAT_TTL", 0.2)  # 30 s in production
    server = await start_chip()
    contact_id = rows.contact(channel["org_id"], channel["uuid"], "z" * 24)
    rows.msg(contact_id, "hello", direction="I")
    visitor = await connect(server, channel["uuid"])
    await visitor.start("z" * 24)
    rows.one("UPDATE contacts_contact SET status = 'B' WHERE id = %s", contact_id)
    await asyncio.sleep(0.3)
    await visitor.send({"type": "get_history", "before": "2100-01-01T00:00:00Z"})
    assert (await visitor.expect("history"))["history"] == []


async def test_inactive_org_refuses_sockets(chip_server, rows):
    org_id = rows.org("Closed", active=False)
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(f"{chip_server.ws_url}/wc/connect/{rows.channel(org_id)}/")
    assert (refused.value.code, refused.value.response.body) == (400, b'{"error":"no such channel"}')
