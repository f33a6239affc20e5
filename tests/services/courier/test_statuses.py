"""Statuses of several chats of one channel share a Courier post (services/courier/statuses.py), and
each chat's status is still recorded once, given up alone when Courier refuses it, and retried with
the others when Courier fails."""

import asyncio

from services.store import keys
from tests.polling import wait_until
from tests.services.courier.test_queue import FAST, given_up


async def chats_with_a_message(bound, post_msg, server, channel, count: int, uuids: bool = True) -> list:
    """`count` visitors, each shown one message of its own (by uuid, or by numeric id)."""
    visitors = []
    for i in range(count):
        visitor = await bound(server, channel)
        msg_id = f"0199{i:04d}-0000-7000-8000-000000000000" if uuids else 100 + i
        await post_msg(
            channel["uuid"],
            visitor.chat_id,
            {("uuid" if uuids else "id"): msg_id, "text": f"m{i}", "origin": "flow"},
            server=server,
        )
        assert (await visitor.expect("chat_out"))["msg_out"]
        visitor.msg_id = msg_id
        visitors.append(visitor)
    return visitors


async def ack_all(visitors):
    await asyncio.gather(*[v.send({"type": "ack_chat", "msg_id": v.msg_id}) for v in visitors])


def status_requests(courier) -> list:
    return [r for r in courier.requests if r.get("events") and r["events"][0]["type"] == "msg_status"]


async def test_statuses_of_many_chats_share_posts_and_each_is_recorded_once(
    bound, start_chip, store, channel, courier, post_msg
):
    server = await start_chip(new_chats_per_ip=100)
    visitors = await chats_with_a_message(bound, post_msg, server, channel, 12)
    await ack_all(visitors)
    await courier.wait_for(lambda: len(courier.of_type("msg_status")) == 12)
    for visitor in visitors:
        assert courier.of_type("msg_status", visitor.chat_id) == [
            {"type": "msg_status", "status": {"msg_uuid": visitor.msg_id, "status": "delivered"}}
        ]
    shared = status_requests(courier)
    assert len(shared) < 12 and max(len(r["events"]) for r in shared) > 1
    assert all(r["secret"] == "sesame" for r in shared)
    # every chat committed its own events: nothing is left to post, no lock is left held
    for visitor in visitors:
        key = keys.chat_key(channel["uuid"], visitor.chat_id)
        assert await wait_until(lambda key=key: store.llen(keys.courier_events(key)) == 0)
        assert store.get(keys.courier_lock(key)) is None


async def test_statuses_of_two_channels_never_share_a_post(bound, start_chip, rows, courier, post_msg):
    org_id = rows.org()
    channels = [{"org_id": org_id, "uuid": rows.channel(org_id, secret=secret)} for secret in ("sesame", "other")]
    server = await start_chip(new_chats_per_ip=100)
    visitors = []
    for number, (channel, secret) in enumerate(zip(channels, ("sesame", "other"))):
        visitor = await bound(server, channel)
        visitor.msg_id = f"0199000{number}-0000-7000-8000-000000000000"
        await post_msg(
            channel["uuid"],
            visitor.chat_id,
            {"uuid": visitor.msg_id, "text": "hi", "origin": "flow"},
            secret=secret,
            server=server,
        )
        await visitor.expect("chat_out")
        visitors.append(visitor)
    await ack_all(visitors)
    await courier.wait_for(lambda: len(courier.of_type("msg_status")) == 2)
    assert sorted(len(r["events"]) for r in status_requests(courier)) == [1, 1]


async def test_a_status_refused_in_a_shared_post_is_given_up_alone(bound, start_chip, channel, courier, post_msg):
    """Courier v10.3.19+ refuses a status by msg_id for good; the other chats' statuses of that post
    are posted again on their own and recorded."""
    server = await start_chip(retry=FAST, new_chats_per_ip=100)
    by_uuid = await chats_with_a_message(bound, post_msg, server, channel, 4)
    by_id = await chats_with_a_message(bound, post_msg, server, channel, 1, uuids=False)
    courier.status_error = "message status with no UUID or external id"
    await ack_all(by_id + by_uuid)
    await courier.wait_for(lambda: len(courier.of_type("msg_status")) == 4)
    assert await wait_until(lambda: given_up(server, "status_rejected") == 1)
    assert {v.chat_id for v in by_uuid} == {c for c, e in courier.events if e["type"] == "msg_status"}
    await asyncio.sleep(0.3)
    assert len(courier.of_type("msg_status")) == 4  # recorded once each, the refused one never


async def test_a_shared_post_courier_fails_is_retried_for_every_chat(bound, start_chip, channel, courier, post_msg):
    server = await start_chip(retry=FAST, new_chats_per_ip=100)
    visitors = await chats_with_a_message(bound, post_msg, server, channel, 6)
    courier.fail_with, courier.fail_error, courier.fail_times = 503, "", 2
    await ack_all(visitors)
    await courier.wait_for(lambda: len(courier.of_type("msg_status")) == 6)
    assert sorted(c for c, e in courier.events if e["type"] == "msg_status") == sorted(v.chat_id for v in visitors)
