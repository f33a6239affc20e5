"""A msg_status Courier refuses never holds the visitor's own events: it is given up (an error
line, chip_courier_events_given_up) and the visitor's messages behind it go on, in order, once."""

import logging

import orjson
import pytest

from services.courier.client import Outcome, refusal
from services.store import keys
from tests.polling import wait_until
from tests.services.courier.test_queue import FAST, given_up

UPGRADED = "message status with no UUID or external id"  # Courier v10.3.19 and later
BEFORE_UUIDS = "message status with no id or external id"  # the backends before the uuid move


def body(error: str) -> bytes:
    return orjson.dumps({"message": "Error", "data": [{"type": "error", "error": error}]})


@pytest.mark.parametrize(
    "status, error, outcome",
    [
        (400, UPGRADED, Outcome.STATUS_REJECTED),
        (400, BEFORE_UUIDS, Outcome.STATUS_REJECTED),
        (400, "secret incorrect", Outcome.REJECTED),
        (400, "unable to queue message", Outcome.REFUSED),
        (404, UPGRADED, Outcome.REFUSED),  # a proxy's page that happens to say it is not Courier's answer
    ],
)
def test_courier_refusals_are_told_apart_by_their_error(status, error, outcome):
    assert refusal(status, body(error)) is outcome


async def acked_by_id(post_msg, channel, visitor, msg_id: int):
    """A message Courier sent by numeric id (before v10.3.19), shown and acked by the visitor."""
    await post_msg(channel["uuid"], visitor.chat_id, {"id": msg_id, "text": "sent by id", "origin": "flow"})
    await visitor.expect("chat_out")
    await visitor.send({"type": "ack_chat", "msg_id": msg_id})


@pytest.mark.parametrize("error", [UPGRADED, BEFORE_UUIDS])
async def test_a_status_courier_refuses_for_good_is_given_up_and_the_visitors_message_goes_on(
    bound, start_chip, store, channel, courier, post_msg, caplog, error
):
    server = await start_chip(retry=FAST)
    visitor = await bound(server, channel)
    courier.status_error = error
    # Courier briefly down: the status and the visitor's message then share one request
    courier.fail_with, courier.fail_error = 503, ""
    with caplog.at_level(logging.ERROR):
        await acked_by_id(post_msg, channel, visitor, 123)
        await visitor.send({"type": "send_msg", "text": "are you there?"})
        pending = keys.courier_events(keys.chat_key(channel["uuid"], visitor.chat_id))
        assert await wait_until(lambda: store.llen(pending) == 2)
        courier.fail_with = 0
        await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
    assert courier.of_type("msg_in", visitor.chat_id) == [{"type": "msg_in", "msg": {"text": "are you there?"}}]
    status = {"type": "msg_status", "status": {"msg_id": 123, "status": "delivered"}}
    msg_in = {"type": "msg_in", "msg": {"text": "are you there?"}}
    assert [r["events"] for r in courier.requests[-2:]] == [[status, msg_in], [msg_in]]
    assert given_up(server, "status_rejected") == 1 and given_up(server, "rejected") == 0
    assert "giving up 1 courier event(s) (msg_status)" in caplog.text and error in caplog.text
    await visitor.send({"type": "send_msg", "text": "hello again"})
    await courier.wait_for(lambda: len(courier.of_type("msg_in", visitor.chat_id)) == 2)


async def test_a_status_alone_refused_for_good_is_posted_once(bound, start_chip, channel, courier, post_msg):
    server = await start_chip(retry=FAST)
    visitor = await bound(server, channel)
    courier.status_error = UPGRADED
    await acked_by_id(post_msg, channel, visitor, 7)
    await courier.wait_for(lambda: given_up(server, "status_rejected") == 1)
    await visitor.silent(0.5)
    assert len([r for r in courier.requests if r["events"][0]["type"] == "msg_status"]) == 1


async def test_a_status_courier_keeps_refusing_gives_way_after_the_status_expiry(
    bound, start_chip, channel, courier, post_msg
):
    """A 400 that may clear (Courier failing on its side) is retried, but for --status-expiry only
    while it holds the visitor's messages; those keep their order and arrive once."""
    server = await start_chip(retry=FAST, status_expiry=1.0)
    visitor = await bound(server, channel)
    courier.status_error = "unable to queue message"
    await acked_by_id(post_msg, channel, visitor, 9)
    await courier.wait_for(lambda: len(courier.requests) >= 3)  # refused, and retried
    for text in ("first", "second"):
        await visitor.send({"type": "send_msg", "text": text})
    await courier.wait_for(lambda: len(courier.of_type("msg_in", visitor.chat_id)) == 2, timeout=5)
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == ["first", "second"]
    assert given_up(server, "status_expired") == 1
    assert courier.of_type("msg_status", visitor.chat_id) == []
    refused = [r for r in courier.requests if r["events"][0]["type"] == "msg_status"]
    assert len(refused) >= 2  # it had its short retry
