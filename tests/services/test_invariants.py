"""The invariants of services/delivery/push.py and services/courier/queue.py (their docstrings list
them), checked on random interleavings of what visitors, Courier and operators do. Each run is
seeded, so a failure names the seed that replays its steps, and bounded: a few dozen steps.

A step is one of: Courier queues a message (/wc/send, to any process); a widget sends a text, or
acks what it was pushed; a socket closes and a new one resumes its chat on any process; a process
is stopped (between commands) and another started on the same Redis; Courier answers 503 for a
while, or again 200; time passes (re-pushes, retries). At the end Courier answers, and:

- what waited for Courier goes by itself (every chat's list of events empties);

then every chat resumes on a new socket and acks all it is pushed, and:

- each chat's widget saw its messages first in the order Courier queued them (repeats allowed);
- every message was reported `delivered` to Courier exactly once;
- every text a widget sent reached Courier at most once and in the order sent, and each one chip
  took (it answered a later command on the same socket) exactly once;
- Courier never had two requests of one chat in flight at once (only the lock holder posts).
"""

import asyncio
import json
import random
from collections import Counter

import pytest

from services.backoff import Backoff
from services.store import keys
from tests.polling import wait_until

SEEDS = (1, 2, 3, 4, 5)
STEPS = 40
CHATS = 2
# retries and re-pushes within a run's patience: Courier retried every 50-200 ms, a message pushed
# again 0.5 s after it went unacked
FAST = {"courier": Backoff(0.05, 0.2), "tick": 0.05}
SETTINGS = {"ack_timeout": 0.5, "retry": FAST}
WINDOW, BATCH = 3, 4  # small, so that outboxes run deeper than a window and lists longer than a batch


class Chat:
    """What the model knows of one chat: what Courier queued for it, what its widgets saw and sent."""

    def __init__(self, chat_id: str):
        self.id = chat_id
        self.queued: list[int] = []  # message ids, in the order /wc/send answered 200
        self.seen: list[int] = []  # every chat_out any of its sockets was pushed, in order
        self.sent: list[str] = []  # texts sent, in order
        self.taken: set[str] = set()  # those chip read (a later command on the socket was answered)
        self.widget = None


class Widget:
    """One socket of a chat: a reader records each chat_out into the chat, and queues the rest."""

    def __init__(self, chat: Chat, visitor, server):
        self.chat, self.visitor, self.server = chat, visitor, server
        self.pushed: list[int] = []
        self.acked: set[int] = set()
        self.replies: asyncio.Queue = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        while (frame := await self.visitor.conn.read_message()) is not None:
            event = json.loads(frame)
            if event["type"] == "chat_out":
                self.chat.seen.append(event["msg_out"]["id"])
                self.pushed.append(event["msg_out"]["id"])
            else:
                self.replies.put_nowait(event)

    async def answered(self) -> bool:
        """Whether chip answers a get_history: it reads a socket's commands in order, so everything
        sent before it was taken. False when the socket closes first."""
        await self.visitor.send({"type": "get_history", "before": "2100-01-01T00:00:00Z"})
        reply = asyncio.ensure_future(self.replies.get())
        done, _ = await asyncio.wait({reply, self.reader}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        reply.cancel()
        return reply in done and reply.result()["type"] == "history"

    async def ack(self, ids):
        for msg_id in ids:
            self.acked.add(msg_id)
            await self.visitor.send({"type": "ack_chat", "msg_id": msg_id})

    async def close(self):
        self.visitor.close()
        await asyncio.wait({self.reader}, timeout=5)


class Run:
    """The servers, Courier and chats of one seeded run, and its steps."""

    def __init__(self, seed, start_chip, connect, http, courier, channel):
        self.seed, self.rng = seed, random.Random(seed)
        self.start_chip, self.connect, self.http = start_chip, connect, http
        self.courier, self.channel = courier, channel
        self.servers, self.chats, self.next_id = [], [], 0
        self.steps: list[str] = []  # what was done, for a failure to tell

    async def start(self):
        for _ in range(2):
            await self.start_server()
        for _ in range(CHATS):
            visitor = await self.connect(self.servers[0], self.channel["uuid"])
            chat = Chat((await visitor.start())["chat_id"])
            chat.widget = Widget(chat, visitor, self.servers[0])
            self.chats.append(chat)

    async def start_server(self):
        server = await self.start_chip(**SETTINGS)
        server.services.delivery.window = WINDOW
        server.services.courier_queue.batch = BATCH
        self.servers.append(server)

    async def resume(self, chat: Chat):
        """Close the chat's socket, if any, and resume the chat on a new one on any process."""
        if chat.widget is not None:
            await chat.widget.close()
        server = self.rng.choice(self.servers)
        visitor = await self.connect(server, self.channel["uuid"])
        assert (await visitor.start(chat.id))["type"] == "chat_resumed"
        chat.widget = Widget(chat, visitor, server)

    # the steps

    async def queue(self, chat: Chat):
        self.next_id += 1
        body = {
            "chat_id": chat.id,
            "secret": "sesame",
            "msg": {"id": self.next_id, "text": f"m{self.next_id}", "origin": "flow"},
        }
        status, _ = await self.http(
            f"{self.rng.choice(self.servers).url}/wc/send/{self.channel['uuid']}/", method="POST", body=json.dumps(body)
        )
        assert status == 200, f"/wc/send answered {status}"
        self.courier.sent(chat.id, body["msg"])  # Courier files the message's status under this chat
        chat.queued.append(self.next_id)

    async def send(self, chat: Chat):
        if chat.widget is None:
            return
        text = f"{chat.id[:4]}-{len(chat.sent)}"
        chat.sent.append(text)
        await chat.widget.visitor.send({"type": "send_msg", "text": text})
        if await chat.widget.answered():
            chat.taken.add(text)

    async def ack(self, chat: Chat):
        widget = chat.widget
        if widget is None:
            return
        waiting = [msg_id for msg_id in dict.fromkeys(widget.pushed) if msg_id not in widget.acked]
        await widget.ack(self.rng.sample(waiting, self.rng.randint(0, len(waiting))))

    async def restart(self, _chat):
        stopping = self.servers.pop(self.rng.randrange(len(self.servers)))
        # between commands: one chip is still carrying out as it stops may start a post that the stop
        # cuts short after Courier took it, and that post's events then reach Courier twice
        for chat in self.chats:
            if chat.widget is not None and chat.widget.server is stopping:
                await chat.widget.answered()
        await stopping.stop()
        for chat in self.chats:
            if chat.widget is not None and chat.widget.server is stopping:
                await chat.widget.close()
                chat.widget = None
        await self.start_server()

    async def reconnect(self, chat: Chat):
        await self.resume(chat)

    async def courier_fails(self, _chat):
        if self.courier.fail_with:
            self.courier.fail_with = 0
        else:
            self.courier.fail_with, self.courier.fail_times = 503, self.rng.choice([None, 1, 3])

    async def pause(self, _chat):
        await asyncio.sleep(self.rng.uniform(0.05, 0.4))

    ACTIONS = ((queue, 4), (send, 2), (ack, 3), (reconnect, 1.5), (restart, 1), (courier_fails, 1), (pause, 1))

    async def step(self):
        step = self.rng.choices([s for s, _ in self.ACTIONS], weights=[w for _, w in self.ACTIONS])[0]
        chat = self.rng.choice(self.chats)
        self.steps.append(f"{step.__name__}({chat.id[:4]})")
        await step(self, chat)

    @property
    def trail(self) -> str:
        return f"seed {self.seed}: " + ", ".join(self.steps)

    async def finish(self, store):
        """Courier answers again, and what waited for it goes by itself; then each chat resumes on a
        new socket and acks whatever it is pushed until its outbox is empty."""
        self.courier.fail_with = 0
        lists = [keys.courier_events(keys.chat_key(self.channel["uuid"], chat.id)) for chat in self.chats]
        assert await wait_until(lambda: not any(store.llen(events) for events in lists), timeout=10), (
            f"events still wait for a Courier that answers again; {self.trail}"
        )
        for chat in self.chats:
            await self.resume(chat)

        async def acked_all() -> bool:
            for chat in self.chats:
                widget = chat.widget
                await widget.ack([msg_id for msg_id in widget.pushed if msg_id not in widget.acked])
            return all(
                store.zcard(keys.outbox_order(keys.chat_key(self.channel["uuid"], chat.id))) == 0 for chat in self.chats
            )

        for _ in range(300):
            if await acked_all():
                break
            await asyncio.sleep(0.05)
        assert await acked_all(), f"outboxes not emptied by acking everything pushed; {self.trail}"
        assert await wait_until(lambda: all(self.reported(chat) for chat in self.chats), timeout=15), (
            f"Courier did not get every status and text; {self.trail}"
        )
        await asyncio.sleep(0.3)  # a status or text posted twice would show by now

    def reported(self, chat: Chat) -> bool:
        statuses = self.courier.of_type("msg_status", chat.id)
        texts = self.courier.of_type("msg_in", chat.id)
        return len(statuses) >= len(chat.queued) and len(texts) >= len(chat.taken)


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_interleavings_keep_order_report_each_ack_once_and_post_one_request_at_a_time(
    seed, start_chip, connect, http, courier, channel, store
):
    run = Run(seed, start_chip, connect, http, courier, channel)
    await run.start()
    for _ in range(STEPS):
        await run.step()
    await run.finish(store)
    trail = run.trail

    for chat in run.chats:
        assert list(dict.fromkeys(chat.seen)) == chat.queued, (
            f"chat {chat.id}: first pushes {list(dict.fromkeys(chat.seen))}, queued {chat.queued}; {trail}"
        )
        statuses = courier.of_type("msg_status", chat.id)
        assert Counter(e["status"]["msg_id"] for e in statuses) == Counter(chat.queued), (
            f"chat {chat.id}: delivered {[e['status']['msg_id'] for e in statuses]}, queued {chat.queued}; {trail}"
        )
        assert {e["status"]["status"] for e in statuses} <= {"delivered"}
        texts = [e["msg"]["text"] for e in courier.of_type("msg_in", chat.id)]
        assert texts == [t for t in chat.sent if t in texts] and len(set(texts)) == len(texts), (
            f"chat {chat.id}: Courier got {texts}, the widget sent {chat.sent}; {trail}"
        )
        assert chat.taken <= set(texts), f"chat {chat.id}: texts chip took never reached Courier; {trail}"
    assert courier.overlaps == [], f"two requests of chat(s) {set(courier.overlaps)} in flight at once; {trail}"
