"""A chat's Courier lock (services/courier/queue.py): a poster that lost it meanwhile commits nothing."""

import asyncio
import time

from services.store import keys
from tests.polling import wait_until


async def test_a_post_whose_lock_was_taken_over_leaves_the_new_holders_events_and_lock(
    store, bound, chip_server, channel, courier
):
    visitor = await bound(chip_server, channel)
    key = keys.chat_key(channel["uuid"], visitor.chat_id)
    courier.delay = 0.5
    await visitor.send({"type": "send_msg", "text": "hello"})
    assert await wait_until(lambda: any(e["type"] == "msg_in" for r in courier.requests for e in r["events"]))
    # mid-post, the lock runs out and another process takes it over, with the events still queued
    store.set(keys.courier_lock(key), "another process", px=10_000)
    await courier.wait_for(lambda: courier.of_type("msg_in", visitor.chat_id))
    # chip commits a moment after Courier's 200; give it every chance to (wrongly) do so
    assert not await wait_until(lambda: store.get(keys.courier_lock(key)) != b"another process", timeout=1.0), (
        "a poster that had lost the lock deleted the new holder's lock"
    )
    assert store.llen(keys.courier_events(key)) == 1, (
        "a poster that had lost the lock trimmed the events the new holder is to post"
    )


async def test_a_stopped_queue_posts_nothing_more_and_hands_its_chats_to_the_next_poster(
    store, bound, start_chip, channel, courier
):
    """A command answered as a process stops must not start a post that the closing client would cut off
    after Courier took it (the next poster would post it again): the chat is left due, for the next."""
    first = await start_chip()
    visitor = await bound(first, channel)
    key = keys.chat_key(channel["uuid"], visitor.chat_id)
    queue = first.services.courier_queue
    posted = len(courier.requests)
    stopping = asyncio.get_running_loop().create_task(queue.stop(1.0))
    await asyncio.sleep(0)  # stop() has begun: it waits for the posts under way
    await queue.push(key, {"type": "msg_in", "msg": {"text": "late"}})
    assert (await queue.kick(key)).value == "failed"
    await stopping
    assert await wait_until(lambda: store.zscore(keys.courier_due_of(key), key) <= time.time())
    assert len(courier.requests) == posted
    score = store.zscore(keys.courier_due_of(key), key)
    assert score is not None and score <= time.time()  # due now, not a grace period ahead
