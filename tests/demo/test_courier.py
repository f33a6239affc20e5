"""demo/courier.py writes what Courier and mailroom write, within both schemas' constraints."""

import pytest

from models.schema import GENERATIONS

pytestmark = pytest.mark.parametrize("generation", GENERATIONS, indirect=True)


async def test_a_delivered_status_before_wired_stamps_sent_on(courier, channel, rows):
    # the widget's ack may come back before chip's answer to Courier did: no_sent_status_without_sent_on
    rows.contact(channel["org_id"], channel["uuid"], "d" * 24)
    msg_id = courier.store.msg_out(channel["uuid"], "d" * 24, "Pick one", quick_replies=["Yes", "No"], flow_id=3)
    assert rows.one("SELECT status, sent_on FROM msgs_msg WHERE id = %s", msg_id) == ("Q", None)
    body = {
        "chat_id": "d" * 24,
        "secret": "sesame",
        "events": [{"type": "msg_status", "status": {"msg_id": msg_id, "status": "delivered"}}],
    }
    status, _, _ = courier.store.receive(channel["uuid"], body)
    assert status == 200
    state, sent_on = rows.one("SELECT status, sent_on FROM msgs_msg WHERE id = %s", msg_id)
    assert state == "D" and sent_on is not None


async def test_an_incoming_message_has_its_channel_and_urn_and_clears_the_display(courier, channel, rows):
    rows.contact(channel["org_id"], channel["uuid"], "i" * 24, email="ann@example.com")
    body = {"chat_id": "i" * 24, "secret": "sesame", "events": [{"type": "msg_in", "msg": {"text": "hi"}}]}
    assert courier.store.receive(channel["uuid"], body)[0] == 200
    assert rows.one(
        "SELECT m.status, m.channel_id = u.channel_id, m.contact_urn_id = u.id, u.display"
        " FROM msgs_msg m JOIN contacts_contacturn u ON u.contact_id = m.contact_id"
    ) == ("H", True, True, None)
