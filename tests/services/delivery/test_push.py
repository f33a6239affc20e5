"""Delivery semantics of protocol.md §5: order, acks, redelivery, retry, and several processes."""

import asyncio

from services.store import keys


def outbox_size(store, channel_uuid, chat_id) -> int:
    return store.zcard(keys.outbox_order(keys.chat_key(channel_uuid, chat_id)))


async def test_messages_arrive_in_the_order_courier_queued_them(bound, chip_server, channel, connect, post_msg):
    visitor = await bound(chip_server, channel)
    for i in range(1, 51):
        await post_msg(channel["uuid"], visitor.chat_id, {"id": i, "text": f"m{i}", "origin": "flow"})
    received = [(await visitor.expect("chat_out"))["msg_out"]["id"] for _ in range(50)]
    assert received == list(range(1, 51))


async def test_concurrent_posts_keep_queue_order(bound, chip_server, channel, connect, post_msg, store):
    visitor = await bound(chip_server, channel)
    statuses = await asyncio.gather(
        *[
            post_msg(channel["uuid"], visitor.chat_id, {"id": i, "text": f"m{i}", "origin": "flow"})
            for i in range(1, 31)
        ]
    )
    assert all(status == 200 for status, _ in statuses)
    received = [(await visitor.expect("chat_out"))["msg_out"]["id"] for _ in range(30)]
    assert sorted(received) == list(range(1, 31)) and len(set(received)) == 30
    assert outbox_size(store, channel["uuid"], visitor.chat_id) == 30
    # the order chip queued them in is the order pushed
    queued = [int(k) for k in store.zrange(keys.outbox_order(keys.chat_key(channel["uuid"], visitor.chat_id)), 0, -1)]
    assert received == queued


async def test_ack_removes_from_outbox_and_unacked_come_back_on_reconnect(
    bound, chip_server, channel, connect, post_msg, store
):
    visitor = await bound(chip_server, channel)
    for i in (1, 2, 3):
        await post_msg(channel["uuid"], visitor.chat_id, {"id": i, "text": f"m{i}", "origin": "flow"})
    for _ in range(3):
        await visitor.expect("chat_out")
    await visitor.send({"type": "ack_chat", "msg_id": 1})
    await visitor.send({"type": "ack_chat", "msg_id": 1})  # acking twice is harmless
    await visitor.send({"type": "ack_chat", "msg_id": 4242})  # so is an unknown id
    await visitor.silent(0.2)
    assert outbox_size(store, channel["uuid"], visitor.chat_id) == 2
    visitor.close()

    again = await bound(chip_server, channel, visitor.chat_id)
    assert [(await again.expect("chat_out"))["msg_out"]["id"] for _ in range(2)] == [2, 3]


async def test_messages_queued_while_away_flow_on_resume_in_order(chip_server, channel, connect, post_msg, rows):
    chat_id = "w" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    for i in range(1, 6):
        assert (await post_msg(channel["uuid"], chat_id, {"id": i, "text": f"m{i}", "origin": "broadcast"}))[0] == 200
    visitor = await connect(chip_server, channel["uuid"])
    assert (await visitor.start(chat_id))["type"] == "chat_resumed"  # the reply comes before any chat_out
    assert [(await visitor.expect("chat_out"))["msg_out"]["id"] for _ in range(5)] == [1, 2, 3, 4, 5]


async def test_unacked_message_is_pushed_again_after_ack_timeout(bound, start_chip, channel, connect, post_msg):
    server = await start_chip(ack_timeout=0.3)
    visitor = await bound(server, channel)
    await post_msg(channel["uuid"], visitor.chat_id, {"id": 77, "text": "again", "origin": "flow"}, server=server)
    first = await visitor.expect("chat_out")
    second = await visitor.expect("chat_out", timeout=3)
    assert first == second
    await visitor.send({"type": "ack_chat", "msg_id": 77})
    await visitor.silent(1.5)


async def test_acked_message_is_not_pushed_again(bound, start_chip, channel, connect, post_msg):
    server = await start_chip(ack_timeout=0.3)
    visitor = await bound(server, channel)
    await post_msg(channel["uuid"], visitor.chat_id, {"id": 78, "text": "once", "origin": "flow"}, server=server)
    await visitor.expect("chat_out")
    await visitor.send({"type": "ack_chat", "msg_id": 78})
    await visitor.silent(1.5)


async def test_a_message_courier_queues_again_after_its_ack_is_pushed_again(
    bound, chip_server, channel, connect, post_msg, courier
):
    # Courier may repeat a /wc/send whose answer it lost after the widget acked the message: at least
    # once means it goes out again (the widget de-duplicates by id), and at once, not after a timeout
    visitor = await bound(chip_server, channel)
    msg = {"id": 79, "text": "twice", "origin": "flow"}
    await post_msg(channel["uuid"], visitor.chat_id, msg)
    await visitor.expect("chat_out")
    await visitor.send({"type": "ack_chat", "msg_id": 79})
    await courier.wait_for(lambda: courier.of_type("msg_status", visitor.chat_id))
    assert (await post_msg(channel["uuid"], visitor.chat_id, msg))[0] == 200
    assert (await visitor.expect("chat_out", timeout=1))["msg_out"]["id"] == 79


async def test_two_instances_share_one_redis(bound, start_chip, channel, connect, post_msg, courier):
    one = await start_chip(instance_id="one")
    two = await start_chip(instance_id="two")
    visitor = await bound(two, channel)
    for i in (1, 2, 3):
        status, _ = await post_msg(
            channel["uuid"], visitor.chat_id, {"id": i, "text": f"m{i}", "origin": "flow"}, server=one
        )
        assert status == 200
    assert [(await visitor.expect("chat_out"))["msg_out"]["id"] for _ in range(3)] == [1, 2, 3]
    await visitor.send({"type": "ack_chat", "msg_id": 2})
    await courier.wait_for(lambda: courier.of_type("msg_status", visitor.chat_id))


async def test_every_socket_of_a_chat_gets_each_message_and_one_ack_completes_it(
    bound, start_chip, channel, connect, post_msg, store
):
    one = await start_chip(instance_id="one", ack_timeout=0.3)
    two = await start_chip(instance_id="two", ack_timeout=0.3)
    laptop = await bound(one, channel)
    phone = await bound(two, channel, laptop.chat_id)
    tab = await bound(one, channel, laptop.chat_id)
    await post_msg(channel["uuid"], laptop.chat_id, {"id": 5, "text": "all of you", "origin": "chat"}, server=one)
    for visitor in (laptop, phone, tab):
        assert (await visitor.expect("chat_out"))["msg_out"]["id"] == 5
    await phone.send({"type": "ack_chat", "msg_id": 5})
    tab.close()
    await asyncio.sleep(0.1)
    assert outbox_size(store, channel["uuid"], laptop.chat_id) == 0
    await post_msg(channel["uuid"], laptop.chat_id, {"id": 6, "text": "still", "origin": "chat"}, server=two)
    assert (await laptop.expect("chat_out"))["msg_out"]["id"] == 6
    assert (await phone.expect("chat_out"))["msg_out"]["id"] == 6


async def test_an_outbox_deeper_than_one_window_flows_as_acks_come(
    bound, chip_server, channel, connect, post_msg, rows
):
    chat_id = "d" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    for i in range(1, 151):  # more than the 100 pushed at a time
        await post_msg(channel["uuid"], chat_id, {"id": i, "text": f"m{i}", "origin": "broadcast"})
    visitor = await bound(chip_server, channel, chat_id)
    received = []
    for _ in range(150):
        msg_id = (await visitor.expect("chat_out", timeout=3))["msg_out"]["id"]
        received.append(msg_id)
        await visitor.send({"type": "ack_chat", "msg_id": msg_id})
    assert received == list(range(1, 151))
    await visitor.silent(0.3)


async def test_a_message_queued_while_a_pump_reads_the_outbox_waits_for_it(
    bound, chip_server, channel, post_msg, courier, monkeypatch
):
    # a window of three: the fourth message finds it full and has the outbox read (a pump), which the
    # test holds; an ack meanwhile makes room, so only the pump under way tells the fifth to wait
    delivery = chip_server.services.delivery
    delivery.window = 3
    visitor = await bound(chip_server, channel)
    received = []
    for i in (1, 2, 3):  # pushed as they come (no read of the outbox holds as many as a window)
        await post_msg(channel["uuid"], visitor.chat_id, {"id": i, "text": f"m{i}", "origin": "flow"})
        received.append((await visitor.expect("chat_out"))["msg_out"]["id"])

    reading, release, read = asyncio.Event(), asyncio.Event(), delivery.outbox.window

    async def held(key, size):
        reading.set()
        await release.wait()
        return await read(key, size)

    monkeypatch.setattr(delivery.outbox, "window", held)
    await post_msg(channel["uuid"], visitor.chat_id, {"id": 4, "text": "m4", "origin": "flow"})
    await asyncio.wait_for(reading.wait(), 5)
    await visitor.send({"type": "ack_chat", "msg_id": 1})
    await courier.wait_for(lambda: courier.of_type("msg_status", visitor.chat_id))  # chip has taken the ack
    await post_msg(channel["uuid"], visitor.chat_id, {"id": 5, "text": "m5", "origin": "flow"})
    await asyncio.sleep(0.3)  # its wake-up reaches the process while the pump still reads
    release.set()
    await visitor.send({"type": "ack_chat", "msg_id": 2})
    for _ in range(2):
        received.append((await visitor.expect("chat_out", timeout=3))["msg_out"]["id"])
        await visitor.send({"type": "ack_chat", "msg_id": received[-1]})
    assert received == [1, 2, 3, 4, 5], "a message overtook older ones that a pump was reading"
