"""POST /wc/send refusals that a user would check one by one: an empty secret, a channel with no
secret, chat IDs of the wrong length. Each gets a 400 with a JSON error and queues nothing."""

import json

import pytest

from services.store import keys


async def _send(http, server, channel_uuid, chat_id, secret) -> tuple:
    body = {"chat_id": chat_id, "secret": secret, "msg": {"id": 1, "text": "x", "origin": "flow"}}
    return await http(f"{server.url}/wc/send/{channel_uuid}/", method="POST", body=json.dumps(body))


async def test_an_empty_secret_is_refused(store, chip_server, channel, rows, http):
    chat_id = "e" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    status, reply = await _send(http, chip_server, channel["uuid"], chat_id, "")
    assert (status, reply) == (400, {"error": "secret does not match the channel's"}), "an empty secret was let in"
    assert store.zcard(keys.outbox_order(keys.chat_key(channel["uuid"], chat_id))) == 0


async def test_a_channel_without_a_secret_refuses_every_secret(store, chip_server, channel, rows, http):
    """A CHP channel whose config lost its secret cannot authenticate Courier: nothing gets in,
    not even a post that sends no secret either."""
    chat_id = "n" * 24
    rows.one("UPDATE channels_channel SET config = '{}' WHERE uuid = %s RETURNING id", channel["uuid"])
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    for secret in ["", "sesame"]:
        status, reply = await _send(http, chip_server, channel["uuid"], chat_id, secret)
        assert (status, reply) == (400, {"error": "secret does not match the channel's"}), (
            f"a channel with no secret let in the secret {secret!r}"
        )
    assert store.zcard(keys.outbox_order(keys.chat_key(channel["uuid"], chat_id))) == 0


@pytest.mark.parametrize("chat_id", ["a" * 23, "a" * 25, "a" * 24 + "\n", "a" * 23 + "-", "a" * 24 + ":x@y\n"])
async def test_a_chat_id_of_the_wrong_shape_is_refused_as_such(chip_server, channel, rows, http, chat_id):
    # the chat exists under the 24 characters, so only the ID's check can refuse it
    rows.contact(channel["org_id"], channel["uuid"], chat_id[:24])
    status, reply = await _send(http, chip_server, channel["uuid"], chat_id, "sesame")
    assert (status, reply) == (400, {"error": "chat_id: not a valid chat ID"}), f"chat_id {chat_id!r} was let through"
