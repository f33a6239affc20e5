"""`chip.py admin chat <channel> <chat id>`: one chat as chip holds it (outbox, Courier queue, email,
dead letters) and as RapidPro knows it (contact, URN)."""

import json

import pytest

from models.schema import GENERATIONS
from services.backoff import Backoff
from tests.polling import wait_until

# the chat's contact and URN are read from RapidPro's tables, in either generation
pytestmark = pytest.mark.parametrize("generation", GENERATIONS, indirect=True)

FAST = dict(courier=Backoff(0.05, 0.2), tick=0.05)


async def test_a_chat_shows_its_outbox_courier_queue_email_and_contact(
    admin, start_chip, bound, channel, courier, post_msg, rows
):
    server = await start_chip(retry=FAST)
    visitor = await bound(server, channel)
    chat_id = visitor.chat_id
    await visitor.send({"type": "set_email", "email": "ann@example.com"})
    await courier.wait_for(lambda: courier.of_type("chat_started", chat_id))
    for msg_id in (11, 12):
        await post_msg(
            channel["uuid"], chat_id, {"id": msg_id, "text": f"reply {msg_id}", "origin": "flow"}, server=server
        )
        await visitor.expect("chat_out")  # pushed, not acked: it waits in the outbox
    courier.fail_with = 503
    await visitor.send({"type": "send_msg", "text": "are you there?"})
    assert await wait_until(lambda: len(courier.requests) >= 3)
    contact_id, status = rows.one(
        "SELECT c.id, c.status FROM contacts_contact c JOIN contacts_contacturn u"
        " ON u.contact_id = c.id WHERE u.path = %s",
        chat_id,
    )

    found = json.loads((await admin("chat", channel["uuid"], chat_id, "--json")).out)
    assert [(m["id"], m["text"]) for m in found["outbox"]] == [("11", "reply 11"), ("12", "reply 12")]
    assert [item["event"] for item in found["courier"]["events"]] == [
        {"type": "msg_in", "msg": {"text": "are you there?"}}
    ]
    assert found["courier"]["failed_posts"] >= 1
    assert found["email"] == "ann@example.com"
    assert found["rapidpro"]["contact"]["id"] == contact_id and found["rapidpro"]["contact"]["status"] == status
    assert found["rapidpro"]["urn"]["identity"] == f"webchat:{chat_id}"
    assert found["rapidpro"]["channel"]["org_id"] == channel["org_id"]

    ran = await admin("chat", channel["uuid"], chat_id)
    assert ran.status == 0, ran
    for line in (
        f"contact: {contact_id} ",
        f", status {status}",
        f"urn: webchat:{chat_id}",
        "email (set_email): ann@example.com",
        "outbox: 2 message(s) waiting for the visitor",
        "courier queue: 1 event(s) waiting",
        "msg_in: are you there?",
        "reply 12",
    ):
        assert line in ran.out, (line, ran.out)


async def test_a_chat_chip_never_saw_is_shown_empty(admin, channel):
    found = json.loads((await admin("chat", channel["uuid"], "n" * 24, "--json")).out)
    assert (found["outbox"], found["courier"]["events"], found["email"], found["dead_letters"]) == ([], [], None, [])
    assert found["rapidpro"]["contact"] is None and found["rapidpro"]["channel"] is not None
    ran = await admin("chat", "0d1e7a46-2f3b-4c6e-9a35-6f1b9d7c8e21", "n" * 24)
    assert ran.status == 0 and "channel: not in the database" in ran.out, ran
