"""The peewee models against RapidPro's tables."""

import pytest

from models import Channel, ContactURN
from models.schema import GENERATIONS

# RapidPro's tables at both ends of the releases with CHP
pytestmark = pytest.mark.parametrize("generation", GENERATIONS, indirect=True)


async def test_channel_lookup_takes_only_active_chp_channels(database, rows, channel):
    org_id = channel["org_id"]
    inactive = rows.channel(org_id, active=False)
    other_type = rows.channel(org_id, channel_type="TG")
    assert (await database.run(Channel.active_chp, channel["uuid"])).secret == "sesame"
    # an upper-case UUID names the same channel (UUIDs are case-insensitive)
    assert (await database.run(Channel.active_chp, channel["uuid"].upper())).uuid == channel["uuid"]
    for wrong in [inactive, other_type, channel["uuid"].replace("-", ""), "not-a-uuid", "", "' OR 1=1 --"]:
        assert await database.run(Channel.active_chp, wrong) is None


async def test_urn_lookup_is_per_org(database, rows, channel):
    rows.contact(channel["org_id"], channel["uuid"], "z" * 24)
    other_org = rows.org("Other")
    assert await database.run(ContactURN.for_chat, channel["org_id"], "z" * 24) is not None
    assert await database.run(ContactURN.for_chat, other_org, "z" * 24) is None
    assert await database.run(ContactURN.set_email, other_org, "z" * 24, "x@example.com") is False
    assert rows.one("SELECT display FROM contacts_contacturn WHERE path = %s", "z" * 24) == (None,)


async def test_urns_of_many_chats_are_read_in_one_query_for_their_org_only(database, rows, channel):
    org_id = channel["org_id"]
    rows.contact(org_id, channel["uuid"], "m" * 24, email="m@example.com")
    rows.contact(org_id, channel["uuid"], "n" * 24)
    other_org = rows.org("Other")
    rows.contact(other_org, rows.channel(other_org), "o" * 24)
    found = await database.run(ContactURN.for_chats, org_id, ["m" * 24, "n" * 24, "o" * 24, "p" * 24])
    assert {chat_id: urn.display for chat_id, urn in found.items()} == {"m" * 24: "m@example.com", "n" * 24: None}
    assert await database.run(ContactURN.for_chats, org_id, []) == {}
