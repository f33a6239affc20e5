"""History shows visible and archived text messages only (protocol.md §1: msg_type = 'T',
visibility V or A), not the opt-in requests and voice calls RapidPro keeps in the same table, nor
deleted messages."""

from datetime import datetime, timedelta, timezone

import pytest

from models import Msg
from models.schema import GENERATIONS

# RapidPro's tables at both ends of the releases with CHP
pytestmark = pytest.mark.parametrize("generation", GENERATIONS, indirect=True)


async def history(database, rows, channel, contact_id, before):
    channel_id = rows.one("SELECT id FROM channels_channel WHERE uuid = %s", channel["uuid"])[0]
    return await database.run(Msg.history, database.schema, channel["org_id"], channel_id, contact_id, before)


async def test_history_leaves_out_messages_that_are_not_text(database, rows, channel):
    contact_id = rows.contact(channel["org_id"], channel["uuid"], "v" * 24)
    base = datetime(2024, 4, 1, 12, 0, tzinfo=timezone.utc)
    text = rows.msg(contact_id, "a text", created_on=base)
    rows.msg(contact_id, "", msg_type="O", created_on=base + timedelta(seconds=1))  # an opt-in request
    rows.msg(contact_id, "a call", msg_type="V", direction="O", created_on=base + timedelta(seconds=2))  # voice
    found = await history(database, rows, channel, contact_id, base + timedelta(hours=1))
    assert [(m.id, m.msg_type) for m in found] == [(text, "T")], "history shows messages that are not text"


async def test_history_shows_archived_messages_and_not_deleted_ones(database, rows, channel):
    contact_id = rows.contact(channel["org_id"], channel["uuid"], "w" * 24)
    base = datetime(2024, 4, 1, 12, 0, tzinfo=timezone.utc)
    visible = rows.msg(contact_id, "visible", created_on=base)
    archived = rows.msg(contact_id, "archived", visibility="A", created_on=base + timedelta(seconds=1))
    rows.msg(contact_id, "deleted", visibility="D", created_on=base + timedelta(seconds=2))
    found = await history(database, rows, channel, contact_id, base + timedelta(hours=1))
    assert [m.id for m in found] == [archived, visible], "history must show archived messages, and no deleted one"
