"""Three chip hosts, each in a network namespace of its own with its own address (deploy/hosts/hosts.sh),
sharing one Redis Cluster: Courier posts to one host, visitors sit on the other two; a host's link is
cut, its visitors come back on another host with their chat_id, and nothing is lost.
`make hosts-example` runs this file. Needs root; skipped, with the reason printed, where namespaces
cannot be created."""

import asyncio
import json

COUNT = 3  # messages Courier sends each chat, at each step
DELIVERY_TIMEOUT = 20.0  # seconds a visitor gets to receive what it waits for


async def send(http, host, channel, chat_id: str, msg_id: int):
    body = {"chat_id": chat_id, "secret": "sesame", "msg": {"id": msg_id, "text": f"m{msg_id}", "origin": "flow"}}
    status, reply = await http(
        f"{host.url}/wc/send/{channel['uuid']}/", method="POST", body=json.dumps(body), request_timeout=10
    )
    assert (status, reply) == (200, {"status": "queued"})


async def receive(visitor, ids: set[int], ack: bool = True) -> list[int]:
    """The ids of the chat_out frames the visitor gets until it has seen all of `ids` (repeats
    included, in order); acking each one unless told not to."""
    seen = []
    async with asyncio.timeout(DELIVERY_TIMEOUT):
        while not ids <= set(seen):
            event = await visitor.recv(DELIVERY_TIMEOUT)
            if event["type"] != "chat_out":
                continue
            seen.append(event["msg_out"]["id"])
            if ack:
                await visitor.send({"type": "ack_chat", "msg_id": seen[-1]})
    return seen


def first_seen(ids: list[int]) -> list[int]:
    return list(dict.fromkeys(ids))


async def test_a_host_cut_off_loses_no_message_its_visitors_come_back_on_another(
    hosts, host_chips, http, channel, bound
):
    one, two, three = [await chip.ready(http, timeout=30) for chip in host_chips]
    on_two = [await bound(two, channel) for _ in range(2)]
    on_three = [await bound(three, channel) for _ in range(2)]
    visitors = on_two + on_three
    next_id = iter(range(1, 10_000))

    # everything Courier posts to host 1 reaches the visitors on hosts 2 and 3, in order
    posted = {visitor.chat_id: [] for visitor in visitors}
    for visitor in visitors:
        for _ in range(COUNT):
            posted[visitor.chat_id].append(next(next_id))
            await send(http, one, channel, visitor.chat_id, posted[visitor.chat_id][-1])
    for visitor in visitors:
        assert first_seen(await receive(visitor, set(posted[visitor.chat_id]))) == posted[visitor.chat_id]

    # host 2's visitors get messages they do not ack before its link goes down; more follow after
    unacked = {visitor.chat_id: [] for visitor in visitors}
    for visitor in on_two:
        for _ in range(COUNT):
            unacked[visitor.chat_id].append(next(next_id))
            await send(http, one, channel, visitor.chat_id, unacked[visitor.chat_id][-1])
        await receive(visitor, set(unacked[visitor.chat_id]), ack=False)
    hosts.cut(2)
    for visitor in visitors:
        for _ in range(COUNT):
            unacked[visitor.chat_id].append(next(next_id))
            await send(http, one, channel, visitor.chat_id, unacked[visitor.chat_id][-1])

    # host 2's visitors give up on their dead sockets and resume their chats on host 3
    for visitor in on_two:
        visitor.close()
    moved = [await bound(three, channel, chat_id=visitor.chat_id) for visitor in on_two]
    assert [visitor.chat_id for visitor in moved] == [visitor.chat_id for visitor in on_two]
    for visitor in moved + on_three:
        got = first_seen(await receive(visitor, set(unacked[visitor.chat_id])))
        # nothing lost, nothing acked comes back, the order kept
        assert got == unacked[visitor.chat_id], (visitor.chat_id, got)
