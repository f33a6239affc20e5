"""Dead letters (services/store/deadletters.py): what chip gives up is kept in Redis, as it would have
been posted or pushed, with why and when; within its bounds (oldest dropped first, counted) and its
time to live. First what a running chip keeps, then DeadLetters' bounds on the tests' Redis."""

import asyncio
import time

import orjson
import pytest

from services.backoff import Backoff
from services.store import keys
from services.store.client import connect
from services.store.deadletters import MOST_KEPT, DeadLetters
from services.store.scripts import Scripts
from tests.polling import wait_until

FAST = dict(courier=Backoff(0.05, 0.2), tick=0.05)


def counted(server, name: str, **labels) -> float:
    return server.services.metrics.registry.get_sample_value(name, labels) or 0


async def test_an_event_courier_rejects_is_kept_as_it_would_be_posted(start_chip, bound, channel, courier):
    server = await start_chip(retry=FAST, instance_id="chip-a")
    visitor = await bound(server, channel)
    courier.fail_with, courier.fail_error = 400, "secret incorrect"
    await visitor.send({"type": "send_msg", "text": "lost?"})
    dead = server.services.dead_letters
    assert await wait_until(lambda: counted(server, "chip_dead_letters_total", reason="rejected") == 1)
    [letter] = await dead.all()
    assert letter["event"] == {"type": "msg_in", "msg": {"text": "lost?"}}
    assert (letter["kind"], letter["reason"], letter["channel"], letter["chat"], letter["instance"]) == (
        "courier",
        "rejected",
        channel["uuid"],
        visitor.chat_id,
        "chip-a",
    )
    assert letter["last_error"] == letter["first_error"] == "400: secret incorrect"
    assert letter["attempts"] == 1 and time.time() - letter["at"] < 5
    assert await dead.get(letter["id"]) == letter
    assert await dead.counts() == {"rejected": 1}
    assert counted(server, "chip_courier_events_given_up_total", reason="rejected") == 1


async def test_events_given_up_after_an_outage_are_kept_in_order_with_their_errors(
    start_chip, bound, channel, courier, store
):
    server = await start_chip(retry=FAST, inbound_expiry=1.0)
    visitor = await bound(server, channel)
    courier.fail_with, courier.fail_error = 503, "upstream down"
    for i in range(5):
        await visitor.send({"type": "send_msg", "text": f"m{i}"})
    assert await wait_until(lambda: counted(server, "chip_dead_letters_total", reason="expired") == 5, timeout=8)
    letters = await server.services.dead_letters.all()
    assert [letter["event"]["msg"]["text"] for letter in letters] == [f"m{i}" for i in range(5)]
    assert all(letter["first_error"] == "503: upstream down" for letter in letters)
    assert all(letter["first_error_at"] <= letter["last_error_at"] for letter in letters)
    # the posts that failed before each was given up, counted from the first (and none succeeded since)
    attempts = [letter["attempts"] for letter in letters]
    assert attempts[0] >= 2 and attempts == sorted(attempts), attempts
    # the events themselves are gone from the chat's list: a letter is kept once
    key = keys.chat_key(channel["uuid"], visitor.chat_id)
    assert await wait_until(lambda: store.llen(keys.courier_events(key)) == 0)
    assert len(await server.services.dead_letters.all()) == 5


async def test_a_message_no_visitor_came_for_is_kept_as_it_would_be_pushed(
    start_chip, channel, rows, post_msg, courier
):
    chat_id = "d" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    server = await start_chip(msg_expiry=0.5)
    await post_msg(channel["uuid"], chat_id, {"id": 9, "text": "still there?", "origin": "flow"}, server=server)
    await asyncio.sleep(0.6)
    assert await server.services.expiry.sweep() == 1
    [letter] = await server.services.dead_letters.all(channel["uuid"])
    assert (letter["kind"], letter["reason"], letter["chat"], letter["msg_key"]) == (
        "outbox",
        "msg_expired",
        chat_id,
        "9",
    )
    assert orjson.loads(letter["frame"])["msg_out"]["text"] == "still there?"
    assert counted(server, "chip_dead_letters_total", reason="msg_expired") == 1
    await courier.wait_for(lambda: courier.of_type("msg_status", chat_id))


async def test_with_no_time_to_live_nothing_is_kept(start_chip, bound, channel, courier, store):
    server = await start_chip(retry=FAST, dead_letter_ttl=0)
    visitor = await bound(server, channel)
    courier.fail_with = 400
    await visitor.send({"type": "send_msg", "text": "refused"})
    assert await wait_until(lambda: counted(server, "chip_courier_events_given_up_total", reason="rejected") == 1)
    await asyncio.sleep(0.2)
    assert await server.services.dead_letters.all() == [] and store.keys("*dead*") == []


# DeadLetters on its own


@pytest.fixture
async def letters(redis_url):
    """make(**bounds) -> a DeadLetters on the tests' Redis and what it tallied: [(reason, kept, dropped)]."""
    redis = connect(redis_url)
    scripts = Scripts(redis)
    tallies = []

    def make(ttl=3600.0, most=10_000, most_per_channel=10_000) -> DeadLetters:
        return DeadLetters(
            redis,
            scripts,
            ttl=ttl,
            most=most,
            most_per_channel=most_per_channel,
            tally=lambda *tally: tallies.append(tally),
        )

    make.tallies = tallies
    yield make
    await scripts.stop()
    await redis.aclose()


def chats_of_one_shard(count: int) -> list[tuple[str, str]]:
    """(channel, chat id) of `count` chats of different channels, all in one shard."""
    found = []
    n = 0
    while len(found) < count:
        channel, chat_id = f"c0ffee00-0000-4000-8000-{n:012d}", "x" * 24
        if keys.shard(keys.chat_key(channel, chat_id)) == 7:
            found.append((channel, chat_id))
        n += 1
    return found


def event(text: str) -> dict:
    return {"kind": "courier", "event": {"type": "msg_in", "msg": {"text": text}}}


async def test_a_channel_past_its_bound_loses_its_oldest_letters_and_no_other_channel_does(letters):
    dead = letters(most_per_channel=2 * keys.SHARDS)  # 2 a shard
    (noisy, noisy_chat), (quiet, quiet_chat) = chats_of_one_shard(2)
    await dead.keep(keys.chat_key(quiet, quiet_chat), "expired", [event("quiet")])
    for i in range(4):
        await dead.keep(keys.chat_key(noisy, noisy_chat), "rejected", [event(f"n{i}")])
    assert [letter["event"]["msg"]["text"] for letter in await dead.all(noisy)] == ["n2", "n3"]
    assert [letter["event"]["msg"]["text"] for letter in await dead.all(quiet)] == ["quiet"]
    assert await dead.counts() == {"expired": 1, "rejected": 2}
    assert sum(dropped for _, _, dropped in letters.tallies) == 2


async def test_a_shard_past_its_bound_loses_its_oldest_letters_of_any_channel(letters):
    dead = letters(most=3 * keys.SHARDS)  # 3 a shard
    chats = chats_of_one_shard(5)
    for i, (channel, chat_id) in enumerate(chats):
        await dead.keep(keys.chat_key(channel, chat_id), "expired", [event(f"c{i}")])
    assert [letter["event"]["msg"]["text"] for letter in await dead.all()] == ["c2", "c3", "c4"]
    assert await dead.all(chats[0][0]) == []  # its channel's index is read past the dropped letter
    assert await dead.counts() == {"expired": 3}
    assert [tally for tally in letters.tallies if tally[2]] == [("expired", 1, 1), ("expired", 1, 1)]


async def test_letters_older_than_their_time_to_live_go(letters, store):
    dead = letters(ttl=0.5)
    key = keys.chat_key(*chats_of_one_shard(1)[0])
    await dead.keep(key, "too_large", [event("old")])
    await asyncio.sleep(0.3)
    await dead.keep(key, "expired", [event("new")])
    await asyncio.sleep(0.3)
    assert await dead.trim() == 1
    assert [letter["event"]["msg"]["text"] for letter in await dead.all()] == ["new"]
    assert await dead.counts() == {"expired": 1}
    # and every key of the shard's letters expires with its newest
    assert 0 < store.pttl(keys.dead_letters(keys.shard(key))) <= 200
    await asyncio.sleep(0.3)
    assert store.keys("*dead:letters*") == [] and await dead.counts() == {}


async def test_a_letter_too_large_is_kept_in_part(letters):
    dead = letters()
    key = keys.chat_key(*chats_of_one_shard(1)[0])
    [letter_id] = await dead.keep(key, "too_large", [event("x" * (MOST_KEPT + 10))])
    letter = await dead.get(letter_id)
    assert "event" not in letter and letter["truncated"] > MOST_KEPT and len(letter["part"]) == MOST_KEPT
    assert letter["part"].startswith('{"event":{"type":"msg_in"')
    # a message as large as a /wc/send body may be is kept whole
    frame = orjson.dumps({"type": "chat_out", "msg_out": {"id": 1, "text": "y" * 256 * 1024}}).decode()
    [letter_id] = await dead.keep(key, "msg_expired", [{"kind": "outbox", "msg_key": "1", "frame": frame}])
    assert (await dead.get(letter_id))["frame"] == frame
