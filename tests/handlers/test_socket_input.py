"""Issue 11 findings 2 and 7: what the widget sends that used to slip past validation."""

import pytest


@pytest.mark.parametrize("email", ['"a\u000bb"@x.com', '"a\nb"@x.com', '"a\u2028b"@x.com', '"a\u200bb"@x.com'])
async def test_set_email_with_control_or_invisible_characters_is_refused(chip_server, channel, connect, rows, email):
    chat_id = "k" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.start(chat_id)
    await visitor.send({"type": "set_email", "email": email})
    event = await visitor.expect("error")
    assert event["code"] == "invalid_command" and "may not contain control or invisible characters" in event["error"]
    assert rows.one("SELECT display FROM contacts_contacturn WHERE path = %s", chat_id)[0] is None
    await visitor.send({"type": "set_email", "email": '"a.b"@x.com'})
    await visitor.silent()
    assert rows.one("SELECT display FROM contacts_contacturn WHERE path = %s", chat_id)[0] == '"a.b"@x.com'


async def test_a_trailing_newline_is_no_part_of_an_id(chip_server, channel, connect):
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.start()
    for msg_id in ["10\n", "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\n"]:
        await visitor.send({"type": "ack_chat", "msg_id": msg_id})
        assert (await visitor.expect("error"))["code"] == "invalid_command"
