"""What the widget sends: the table of commands, and (issue 11 findings 2 and 7) what used to slip past
validation."""

import inspect

import pytest
from marshmallow import Schema

from handlers.socket import COMMANDS, counted


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


def test_each_command_is_one_row_naming_its_schema_and_the_coroutine_that_serves_it():
    """The protocol's five commands, each served by a Chats coroutine whose docstring states its payload
    and reply; only an ack of a pushed message is exempt from --command-rate."""
    assert set(COMMANDS) == {"start_chat", "send_msg", "ack_chat", "get_history", "set_email"}
    for kind, command in COMMANDS.items():
        assert inspect.iscoroutinefunction(command.serve) and command.serve.__doc__.startswith(f"`{kind}`")
        assert isinstance(command.schema, Schema)
    assert [kind for kind, command in COMMANDS.items() if command.free is not counted] == ["ack_chat"]
