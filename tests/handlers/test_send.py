"""Courier's side of protocol.md §2: POST /wc/send/{channel}/."""

import asyncio
import json
import re

import pytest

from models.schema import GENERATIONS
from services import lookups
from services.store import keys

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
MSG_UUID = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

# RapidPro's tables at both ends of the releases with CHP
pytestmark = pytest.mark.parametrize("generation", GENERATIONS, indirect=True)


@pytest.fixture
async def visitor(chip_server, channel, connect):
    """A bound visitor, with its chat_id."""
    visitor = await connect(chip_server, channel["uuid"])
    visitor.chat_id = (await visitor.start())["chat_id"]
    return visitor


async def test_queued_message_is_pushed_with_exact_shape(visitor, channel, post_msg):
    status, body = await post_msg(
        channel["uuid"], visitor.chat_id, {"id": 10, "text": "Simple message ☺", "origin": "flow"}
    )
    assert (status, body) == (200, {"status": "queued"})
    event = await visitor.expect("chat_out")
    assert set(event["msg_out"]) == {"id", "text", "origin", "time"}
    assert event["msg_out"]["id"] == 10 and event["msg_out"]["text"] == "Simple message ☺"
    assert event["msg_out"]["origin"] == "flow" and TIME.fullmatch(event["msg_out"]["time"])


async def test_attachments_quick_replies_and_user_pass_through(visitor, channel, post_msg, rows):
    user_id = rows.user(avatar="avatars/bob.jpg", org_id=channel["org_id"])
    no_avatar = rows.user(email="ann@nyaruka.com", first="Ann", last=None, org_id=channel["org_id"])
    await post_msg(
        channel["uuid"],
        visitor.chat_id,
        {
            "id": 11,
            "text": "Thanks!",
            "origin": "chat",
            "user_id": user_id,
            "attachments": ["image/jpeg:https://example.com/a.jpg"],
            "quick_replies": ["Yes", "No"],
        },
    )
    out = (await visitor.expect("chat_out"))["msg_out"]
    assert out["user"] == {
        "id": user_id,
        "name": "Bob McTickets",
        "email": "bob@nyaruka.com",
        "avatar": "https://cdn.test/media/avatars/bob.jpg",
    }
    assert out["attachments"] == ["image/jpeg:https://example.com/a.jpg"]
    assert out["quick_replies"] == ["Yes", "No"]
    await post_msg(
        channel["uuid"],
        visitor.chat_id,
        {"id": 12, "text": "Hi", "origin": "chat", "user_id": no_avatar, "attachments": []},
    )
    out = (await visitor.expect("chat_out"))["msg_out"]
    assert out["user"] == {"id": no_avatar, "name": "Ann", "email": "ann@nyaruka.com"}
    assert "attachments" not in out


async def test_uuid_identified_message_is_acked_with_msg_uuid(visitor, channel, post_msg, courier):
    await post_msg(channel["uuid"], visitor.chat_id, {"uuid": MSG_UUID, "text": "new courier", "origin": "broadcast"})
    out = (await visitor.expect("chat_out"))["msg_out"]
    assert out["id"] == MSG_UUID
    await visitor.send({"type": "ack_chat", "msg_id": MSG_UUID})
    await courier.wait_for(lambda: courier.of_type("msg_status", visitor.chat_id))
    assert courier.of_type("msg_status", visitor.chat_id) == [
        {"type": "msg_status", "status": {"msg_uuid": MSG_UUID, "status": "delivered"}}
    ]


async def test_id_identified_message_is_acked_with_msg_id(visitor, channel, post_msg, courier, rows):
    contact_id = rows.one("SELECT contact_id FROM contacts_contacturn WHERE path = %s", visitor.chat_id)[0]
    msg_id = rows.msg(contact_id, "from a flow")
    await post_msg(channel["uuid"], visitor.chat_id, {"id": msg_id, "text": "from a flow", "origin": "flow"})
    await visitor.expect("chat_out")
    await visitor.send({"type": "ack_chat", "msg_id": msg_id})
    await courier.wait_for(lambda: courier.of_type("msg_status", visitor.chat_id))
    assert courier.of_type("msg_status", visitor.chat_id) == [
        {"type": "msg_status", "status": {"msg_id": msg_id, "status": "delivered"}}
    ]
    assert rows.one("SELECT status FROM msgs_msg WHERE id = %s", msg_id) == ("D",)


async def test_message_is_in_redis_when_200_is_answered(channel, post_msg, rows, chip_server, store):
    chat_id = "h" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    assert (await post_msg(channel["uuid"], chat_id, {"id": 5, "text": "kept", "origin": "flow"}))[0] == 200
    frames = store.hgetall(keys.outbox_frames(keys.chat_key(channel["uuid"], chat_id)))
    assert json.loads(frames[b"5"])["msg_out"]["text"] == "kept"


async def test_courier_repeating_a_message_queues_it_once(visitor, channel, post_msg):
    for _ in range(2):
        assert (await post_msg(channel["uuid"], visitor.chat_id, {"id": 9, "text": "once", "origin": "flow"}))[0] == 200
    await visitor.expect("chat_out")
    await visitor.silent()


@pytest.mark.parametrize(
    "body, error",
    [
        ("not json", "request body is not valid JSON"),
        ("[]", "request body must be a JSON object"),
        ({"secret": "sesame", "msg": {"id": 1, "text": "x", "origin": "flow"}}, "chat_id: field is required"),
        (
            {"chat_id": "x", "secret": "sesame", "msg": {"id": 1, "text": "x", "origin": "flow"}},
            "chat_id: not a valid chat ID",
        ),
        ({"chat_id": "CHAT", "msg": {"id": 1, "text": "x", "origin": "flow"}}, "secret: field is required"),
        ({"chat_id": "CHAT", "secret": "sesame"}, "msg: field is required"),
        (
            {"chat_id": "CHAT", "secret": "sesame", "msg": {"text": "x", "origin": "flow"}},
            "msg.id: id or uuid is required",
        ),
        ({"chat_id": "CHAT", "secret": "sesame", "msg": {"id": 1, "origin": "flow"}}, "msg.text: field is required"),
        ({"chat_id": "CHAT", "secret": "sesame", "msg": {"id": 1, "text": "x"}}, "msg.origin: field is required"),
        (
            {"chat_id": "CHAT", "secret": "sesame", "msg": {"id": 1, "text": "x", "origin": "sms"}},
            "msg.origin: must be one of",
        ),
        (
            {"chat_id": "CHAT", "secret": "sesame", "msg": {"id": "1", "text": "x", "origin": "flow"}},
            "msg.id: Not a valid integer.",
        ),
        (
            {"chat_id": "CHAT", "secret": "sesame", "msg": {"uuid": "nope", "text": "x", "origin": "flow"}},
            "msg.uuid: Not a valid UUID.",
        ),
        (
            {"chat_id": "CHAT", "secret": "wrong", "msg": {"id": 1, "text": "x", "origin": "flow"}},
            "secret does not match",
        ),
        ({"chat_id": "Z" * 24, "secret": "sesame", "msg": {"id": 1, "text": "x", "origin": "flow"}}, "no such chat"),
        (
            {"chat_id": "CHAT", "secret": "sesame", "msg": {"id": 1, "text": "x", "origin": "chat", "user_id": 999}},
            "no such user: 999",
        ),
    ],
)
async def test_every_refusal_is_a_400_with_a_json_error(visitor, channel, http, chip_server, body, error):
    if isinstance(body, dict) and body.get("chat_id") == "CHAT":
        body = {**body, "chat_id": visitor.chat_id}  # a copy: each generation runs with the same body
    raw = body if isinstance(body, str) else json.dumps(body)
    status, reply = await http(f"{chip_server.url}/wc/send/{channel['uuid']}/", method="POST", body=raw)
    assert status == 400
    assert reply["error"].startswith(error), reply
    await visitor.silent(0.1)


async def test_unknown_channel_is_400(post_msg, visitor, rows, channel):
    status, body = await post_msg(
        "8291264a-4581-4d12-96e5-e9fcfa6e68d9", visitor.chat_id, {"id": 1, "text": "x", "origin": "flow"}
    )
    assert (status, body) == (400, {"error": "no such channel"})


async def test_chat_of_another_org_is_unknown_here(post_msg, channel, rows):
    other_org = rows.org("Other")
    other_channel = rows.channel(other_org)
    rows.contact(other_org, other_channel, "o" * 24)
    status, body = await post_msg(channel["uuid"], "o" * 24, {"id": 1, "text": "x", "origin": "flow"})
    assert status == 400 and body["error"].startswith("no such chat")


async def test_redis_down_is_503_so_courier_retries(spare_redis, start_chip, channel, rows, http):
    server = await start_chip(valkey=spare_redis.url)
    rows.contact(channel["org_id"], channel["uuid"], "r" * 24)
    body = json.dumps({"chat_id": "r" * 24, "secret": "sesame", "msg": {"id": 1, "text": "x", "origin": "flow"}})
    spare_redis.stop()
    status, reply = await http(f"{server.url}/wc/send/{channel['uuid']}/", method="POST", body=body)
    assert (status, reply) == (503, {"error": "message store unavailable"})
    spare_redis.start()
    status, reply = await http(f"{server.url}/wc/send/{channel['uuid']}/", method="POST", body=body)
    assert (status, reply) == (200, {"status": "queued"})


@pytest.mark.parametrize("who", ["another org's member", "a deactivated member"])
async def test_a_user_the_org_may_not_show_is_left_out_and_logged(visitor, channel, post_msg, rows, who, caplog):
    if who == "another org's member":
        user_id = rows.user("spy@other.example", "Sly", org_id=rows.org("Other"))
    else:
        user_id = rows.user("gone@nyaruka.com", "Gus", org_id=channel["org_id"], active=False)
    status, _ = await post_msg(
        channel["uuid"], visitor.chat_id, {"id": 21, "text": "Hi", "origin": "chat", "user_id": user_id}
    )
    assert status == 200
    out = (await visitor.expect("chat_out"))["msg_out"]
    assert out["text"] == "Hi" and "user" not in out
    assert f"user {user_id} is {'no member' if 'org' in who else 'not active'}" in caplog.text


async def test_staff_are_shown_in_any_org(visitor, channel, post_msg, rows):
    staff = rows.user("staff@rapidpro.example", "Stan", staff=True)
    await post_msg(channel["uuid"], visitor.chat_id, {"id": 22, "text": "Hi", "origin": "chat", "user_id": staff})
    assert (await visitor.expect("chat_out"))["msg_out"]["user"]["name"] == "Stan McTickets"


@pytest.mark.parametrize(
    "status, active, gone", [("B", True, "blocked"), ("S", True, "stopped"), ("A", False, "deleted")]
)
async def test_a_gone_contacts_chat_refuses_messages(chip_server, channel, post_msg, rows, status, active, gone):
    rows.contact(channel["org_id"], channel["uuid"], "g" * 24, status=status, active=active)
    status, body = await post_msg(channel["uuid"], "g" * 24, {"id": 1, "text": "x", "origin": "flow"})
    assert (status, body) == (400, {"error": f"the chat's contact is {gone}: {'g' * 24}"})


async def test_inactive_org_or_channel_refuses_sends(post_msg, rows, channel):
    closed = rows.org("Closed", active=False)
    for channel_uuid in [rows.channel(closed), rows.channel(channel["org_id"], active=False)]:
        status, body = await post_msg(channel_uuid, "c" * 24, {"id": 1, "text": "x", "origin": "flow"})
        assert (status, body) == (400, {"error": "no such channel"})


async def test_a_rotated_secret_or_deactivated_channel_is_noticed_within_the_cache_lifetime(
    start_chip, channel, rows, http, monkeypatch
):
    monkeypatch.setattr(lookups, "CHANNEL_TTL", 0.2)  # 5 s in production
    server = await start_chip()
    rows.contact(channel["org_id"], channel["uuid"], "r" * 24)

    async def post(secret):
        body = {"chat_id": "r" * 24, "secret": secret, "msg": {"id": 1, "text": "x", "origin": "flow"}}
        return await http(f"{server.url}/wc/send/{channel['uuid']}/", method="POST", body=json.dumps(body))

    assert (await post("sesame"))[0] == 200
    rows.one('UPDATE channels_channel SET config = \'{"secret": "rotated"}\' WHERE uuid = %s', channel["uuid"])
    await asyncio.sleep(0.3)
    assert (await post("sesame"))[0] == 400 and (await post("rotated"))[0] == 200
    rows.one("UPDATE channels_channel SET is_active = false WHERE uuid = %s", channel["uuid"])
    await asyncio.sleep(0.3)
    assert await post("rotated") == (400, {"error": "no such channel"})
