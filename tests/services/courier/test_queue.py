"""Events for Courier survive Courier's failures, keep their order, and are batched per chat."""

import asyncio
import logging

import pytest

from services.backoff import Backoff
from services.store import keys
from tests.courier_double import MAX_BODY
from tests.polling import wait_until

# retries within a test's patience, and a due loop that looks every 50 ms instead of every second
FAST = dict(courier=Backoff(0.05, 0.2), tick=0.05)


@pytest.fixture
async def fast_chip(start_chip):
    return await start_chip(retry=FAST)


async def test_visitor_messages_wait_out_a_courier_outage_in_order(store, bound, fast_chip, channel, connect, courier):
    visitor = await bound(fast_chip, channel)
    courier.fail_with = 500
    for i in range(10):
        await visitor.send({"type": "send_msg", "text": f"m{i}"})
    await courier.wait_for(lambda: len(courier.requests) >= 3)  # it keeps trying
    # the sends above do not wait for chip to read them, so the last may still be on their way in
    pending = keys.courier_events(keys.chat_key(channel["uuid"], visitor.chat_id))
    assert await wait_until(lambda: store.llen(pending) == 10)
    assert courier.of_type("msg_in") == []
    courier.fail_with = 0
    await courier.wait_for(lambda: len(courier.of_type("msg_in", visitor.chat_id)) == 10)
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == [f"m{i}" for i in range(10)]


async def test_chat_started_during_an_outage_is_replied_and_delivered_later(fast_chip, channel, connect, courier, rows):
    courier.fail_with = 503
    visitor = await connect(fast_chip, channel["uuid"])
    chat_id = (await visitor.start())["chat_id"]
    await visitor.send({"type": "send_msg", "text": "hello?"})
    courier.fail_with = 0
    await courier.wait_for(lambda: courier.of_type("msg_in", chat_id))
    kinds = [e["type"] for c, e in courier.events if c == chat_id]
    assert kinds == ["chat_started", "msg_in"]
    assert rows.one("SELECT count(*) FROM contacts_contacturn WHERE path = %s", chat_id) == (1,)


async def test_a_400_from_courier_is_dropped_not_retried(bound, fast_chip, channel, connect, courier, caplog):
    visitor = await bound(fast_chip, channel)
    courier.fail_with = 400
    with caplog.at_level(logging.ERROR):
        await visitor.send({"type": "send_msg", "text": "refused"})
        await courier.wait_for(lambda: len(courier.requests) == 2)
        await visitor.silent(0.5)
    assert [r["events"] for r in courier.requests[1:]] == [[{"type": "msg_in", "msg": {"text": "refused"}}]]
    assert "courier rejected" in caplog.text and "sesame" not in caplog.text
    courier.fail_with = 0
    await visitor.send({"type": "send_msg", "text": "accepted"})
    await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == ["accepted"]


async def test_another_process_delivers_what_a_stopped_one_queued(bound, start_chip, channel, connect, courier):
    first = await start_chip(instance_id="first", retry=FAST)
    visitor = await bound(first, channel)
    courier.fail_with = 500
    await visitor.send({"type": "send_msg", "text": "survives"})
    await courier.wait_for(lambda: len(courier.requests) >= 2)
    visitor.close()
    await first.stop()

    courier.fail_with = 0
    await start_chip(instance_id="second", retry=FAST)
    await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
    assert courier.of_type("msg_in", visitor.chat_id) == [{"type": "msg_in", "msg": {"text": "survives"}}]


async def test_events_of_one_chat_share_requests(bound, chip_server, channel, connect, courier, post_msg):
    visitor = await bound(chip_server, channel)
    courier.delay = 0.05  # acks pile up while a request is in flight
    for i in range(1, 31):
        await post_msg(channel["uuid"], visitor.chat_id, {"id": i, "text": f"m{i}", "origin": "flow"})
    for i in range(1, 31):
        await visitor.expect("chat_out")
        await visitor.send({"type": "ack_chat", "msg_id": i})
    await courier.wait_for(lambda: len(courier.of_type("msg_status", visitor.chat_id)) == 30)
    statuses = [e["status"]["msg_id"] for e in courier.of_type("msg_status", visitor.chat_id)]
    assert statuses == list(range(1, 31))
    status_requests = [r for r in courier.requests if r["events"][0]["type"] == "msg_status"]
    assert len(status_requests) < 30
    assert max(len(r["events"]) for r in status_requests) > 1
    assert all(r["chat_id"] == visitor.chat_id and r["secret"] == "sesame" for r in status_requests)


async def test_a_refused_start_leaves_the_socket_free_to_start_again(chip_server, channel, connect, courier):
    visitor = await connect(chip_server, channel["uuid"])
    courier.fail_with = 400
    assert (await visitor.start())["code"] == "unavailable"
    courier.fail_with = 0
    event = await visitor.start()
    assert event["type"] == "chat_started"
    assert courier.of_type("chat_started", event["chat_id"]) == [{"type": "chat_started"}]


async def test_a_long_drain_keeps_its_lock_so_no_event_is_posted_twice(start_chip, channel, connect, courier):
    servers = [await start_chip(instance_id="one", retry=FAST), await start_chip(instance_id="two", retry=FAST)]
    for server in servers:
        queue = server.services.courier_queue
        queue.batch, queue.grace = 1, 0.3  # one event per post, and a lock that outlives one post only
    visitor = await connect(servers[0], channel["uuid"])
    chat_id = (await visitor.start())["chat_id"]
    courier.delay = 0.2
    for i in range(6):
        await visitor.send({"type": "send_msg", "text": f"m{i}"})
    await courier.wait_for(lambda: len(courier.of_type("msg_in", chat_id)) >= 6, timeout=10)
    await asyncio.sleep(0.5)  # the second process's due loop has had every chance to post again
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", chat_id)] == [f"m{i}" for i in range(6)]


async def test_an_ack_while_another_process_posts_the_chat_is_posted_once_it_is_done(
    store, bound, chip_server, channel, connect, courier, post_msg
):
    # the ack takes the chat's Courier lock with it when it can; here another process holds it
    visitor = await bound(chip_server, channel)
    await post_msg(channel["uuid"], visitor.chat_id, {"id": 5, "text": "hi", "origin": "flow"})
    await visitor.expect("chat_out")
    key = keys.chat_key(channel["uuid"], visitor.chat_id)
    lock = keys.courier_lock(key)
    store.set(lock, "another process", px=700)
    await visitor.send({"type": "ack_chat", "msg_id": 5})
    await asyncio.sleep(0.4)
    assert courier.of_type("msg_status", visitor.chat_id) == []  # the holder alone may post
    assert store.get(lock) == b"another process"
    await courier.wait_for(lambda: courier.of_type("msg_status", visitor.chat_id), timeout=3)
    assert courier.of_type("msg_status", visitor.chat_id) == [
        {"type": "msg_status", "status": {"msg_id": 5, "status": "delivered"}}
    ]
    # chip commits once Courier's 200 reaches it, a moment after the double has recorded the post
    assert await wait_until(lambda: store.llen(keys.courier_events(key)) == 0)
    assert store.get(lock) is None


def given_up(server, reason: str) -> float:
    return (
        server.services.metrics.registry.get_sample_value("chip_courier_events_given_up_total", {"reason": reason}) or 0
    )


async def test_a_400_that_is_courier_failing_is_retried_and_the_message_arrives_once(
    bound, fast_chip, channel, courier, caplog
):
    visitor = await bound(fast_chip, channel)
    courier.fail_with, courier.fail_error, courier.fail_times = 400, "unable to queue message", 2
    with caplog.at_level(logging.WARNING):
        await visitor.send({"type": "send_msg", "text": "keep me"})
        await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
        await asyncio.sleep(0.5)  # time for a wrong post again, with retries 50-200 ms apart
    assert courier.of_type("msg_in", visitor.chat_id) == [{"type": "msg_in", "msg": {"text": "keep me"}}]
    assert [r["events"] for r in courier.requests[1:]] == [[{"type": "msg_in", "msg": {"text": "keep me"}}]] * 3
    assert caplog.text.count("courier refused 1 event(s) for now, will retry") == 2
    assert "courier rejected" not in caplog.text


@pytest.mark.parametrize(
    "error",
    [
        "unable to find channel with type: CHP and uuid: 8eb23e93-5ecb-45ba-b726-3b064e0c56ab",  # Courier's DB lookup
        "channel not found",
        "error writing msg: context deadline exceeded",
        "pq: sorry, too many clients already",
    ],
)
async def test_other_400s_are_retried_too(bound, fast_chip, channel, courier, error):
    visitor = await bound(fast_chip, channel)
    courier.fail_with, courier.fail_error, courier.fail_times = 400, error, 1
    await visitor.send({"type": "send_msg", "text": "again"})
    await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
    assert len(courier.requests) == 3  # chat_started, the refused post, the accepted one


@pytest.mark.parametrize("status", [404, 401, 403, 413, 429])
async def test_other_4xx_are_a_setting_to_mend_and_retried(bound, fast_chip, channel, courier, status):
    """A wrong --courier-url (404) or a proxy's refusal must not cost the visitor's message."""
    visitor = await bound(fast_chip, channel)
    courier.fail_with, courier.fail_error, courier.fail_times = status, "not here", 2
    await visitor.send({"type": "send_msg", "text": "still there?"})
    await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
    assert len(courier.requests) == 4  # chat_started, two refused posts, the accepted one
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == ["still there?"]


@pytest.mark.parametrize(
    "error",
    [
        "secret incorrect",
        "invalid chat id",
        "unable to parse request JSON: unexpected end of JSON input",
        "request JSON doesn't match required schema: Key: 'receivePayload.ChatID' Error:Field validation for "
        "'ChatID' failed on the 'required' tag",
    ],
)
async def test_400s_that_cannot_succeed_are_dropped_after_one_post(bound, fast_chip, channel, courier, caplog, error):
    visitor = await bound(fast_chip, channel)
    courier.fail_with, courier.fail_error = 400, error
    with caplog.at_level(logging.ERROR):
        await visitor.send({"type": "send_msg", "text": "doomed"})
        assert await wait_until(lambda: given_up(fast_chip, "rejected") == 1)
        await asyncio.sleep(0.5)
    assert len(courier.requests) == 2
    assert "courier rejected 1 event(s)" in caplog.text and error[:40] in caplog.text


async def test_a_400_that_never_clears_is_given_up_after_the_inbound_expiry(
    bound, start_chip, store, channel, courier, caplog
):
    server = await start_chip(inbound_expiry=2.0, retry=FAST)
    visitor = await bound(server, channel)
    courier.fail_with, courier.fail_error = 400, "unable to queue message"
    with caplog.at_level(logging.ERROR):
        await visitor.send({"type": "send_msg", "text": "too late"})
        assert await wait_until(lambda: given_up(server, "expired") == 1, timeout=8)
    assert len(courier.requests) > 3  # it was retried meanwhile
    assert "giving up 1 courier event(s) (msg_in) of chat" in caplog.text
    # counted as it is given up, dropped from the list by the commit that follows
    events = keys.courier_events(keys.chat_key(channel["uuid"], visitor.chat_id))
    assert await wait_until(lambda: store.llen(events) == 0)
    courier.fail_with = 0
    await visitor.send({"type": "send_msg", "text": "in time"})
    await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == ["in time"]


async def test_a_slow_courier_is_waited_for_not_posted_to_twice(bound, fast_chip, channel, courier):
    """Courier allows itself 30 s; one that takes 12 s still gets each message once."""
    visitor = await bound(fast_chip, channel)
    courier.delay = 12.0
    await visitor.send({"type": "send_msg", "text": "slowly"})
    await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id), timeout=20)
    await asyncio.sleep(0.5)  # a post chip made again would be recorded at once
    assert courier.of_type("msg_in", visitor.chat_id) == [{"type": "msg_in", "msg": {"text": "slowly"}}]
    assert len(courier.requests) == 2


async def test_no_request_is_larger_than_courier_reads(bound, fast_chip, channel, courier):
    """Control characters take six bytes each in JSON: 50 texts of 4,096 of them are 1.2 MB."""
    visitor = await bound(fast_chip, channel)
    courier.fail_with = 503
    texts = [f"{i:02d}" + "\x01" * 4094 for i in range(50)]
    for text in texts:
        await visitor.send({"type": "send_msg", "text": text})
    await courier.wait_for(lambda: len(courier.requests) >= 3)
    courier.fail_with = 0
    await courier.wait_for(lambda: len(courier.of_type("msg_in", visitor.chat_id)) == 50, timeout=15)
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == texts
    assert max(courier.raw_sizes) <= MAX_BODY


async def test_statuses_share_a_request_with_the_next_message_but_two_messages_never_do(
    bound, fast_chip, channel, courier, post_msg
):
    """Courier writes a request's events up to the one it fails on, then answers 400, and chip posts the
    request again: only statuses may come before a message in one request, since setting them twice is harmless."""
    visitor = await bound(fast_chip, channel)
    for i in (1, 2):
        await post_msg(channel["uuid"], visitor.chat_id, {"id": i, "text": f"m{i}", "origin": "flow"})
        await visitor.expect("chat_out")
    courier.fail_with = 503
    await visitor.send({"type": "ack_chat", "msg_id": 1})
    await visitor.send({"type": "ack_chat", "msg_id": 2})
    await visitor.send({"type": "send_msg", "text": "a"})
    await visitor.send({"type": "send_msg", "text": "b"})
    await courier.wait_for(lambda: len(courier.requests) >= 3)
    courier.fail_with, courier.fail_error, courier.fail_times = 400, "unable to queue message", 1
    await courier.wait_for(lambda: len(courier.of_type("msg_in", visitor.chat_id)) == 2)
    kinds = [[e["type"] for e in r["events"]] for r in courier.requests[1:]]
    assert kinds[-2:] == [["msg_status", "msg_status", "msg_in"], ["msg_in"]]
    assert all(k.count("msg_in") <= 1 and k.index("msg_in") == len(k) - 1 for k in kinds if "msg_in" in k)
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == ["a", "b"]


async def test_a_single_event_over_courier_limit_is_given_up_and_the_next_one_goes(
    bound, start_chip, channel, courier, caplog
):
    server = await start_chip(max_text_length=2_000_000, max_message_bytes=4 * 1024 * 1024, retry=FAST)
    visitor = await bound(server, channel)
    with caplog.at_level(logging.ERROR):
        await visitor.send({"type": "send_msg", "text": "x" * (1024 * 1024)})
        await visitor.send({"type": "send_msg", "text": "after"})
        await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == ["after"]
    assert len(courier.requests) == 2  # chat_started, then "after": the large one was never posted
    assert given_up(server, "too_large") == 1
    assert "more than courier reads of a request" in caplog.text


async def test_a_widget_does_not_wait_for_a_slow_courier_to_start_its_chat(chip_server, channel, connect, courier):
    """chip waits --courier-timeout for Courier's answer, but a widget gets chat_started after answer_wait."""
    chip_server.services.courier_queue.answer_wait = 0.5
    courier.delay = 3.0
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.send({"type": "start_chat"})
    event = await visitor.expect("chat_started", timeout=2.5)
    await courier.wait_for(lambda: courier.of_type("chat_started", event["chat_id"]), timeout=5)
    await asyncio.sleep(0.5)
    assert courier.of_type("chat_started", event["chat_id"]) == [{"type": "chat_started"}]
    assert len(courier.requests) == 1


async def test_an_expired_event_is_given_up_once_while_courier_keeps_failing(bound, start_chip, channel, courier):
    """The events behind it are still within --inbound-expiry and their posts keep failing: the expired
    one must leave the list all the same, or each retry would give it up again."""
    server = await start_chip(inbound_expiry=3.0, retry=FAST)
    visitor = await bound(server, channel)
    courier.fail_with = 503
    await visitor.send({"type": "send_msg", "text": "old"})
    await asyncio.sleep(1.5)
    await visitor.send({"type": "send_msg", "text": "newer"})
    assert await wait_until(lambda: given_up(server, "expired") == 1, timeout=5)
    posts = len(courier.requests)
    await asyncio.sleep(0.4)  # retries 50-200 ms apart, each failing; the newer one expires a second later
    assert len(courier.requests) > posts and given_up(server, "expired") == 1
    courier.fail_with = 0
    await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == ["newer"]
    assert [letter["event"]["msg"]["text"] for letter in await server.services.dead_letters.all()] == ["old"]
