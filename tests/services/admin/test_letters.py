"""`chip.py admin dead-letters`: an operator lists what chip gave up, reads a letter, and puts letters
back (once, in order) or drops them; on one server and on a cluster."""

import asyncio
import json

import pytest

from services.backoff import Backoff
from services.store import keys
from tests.polling import wait_until

FAST = dict(courier=Backoff(0.05, 0.2), tick=0.05)


def kept(server, reason: str) -> float:
    return server.services.metrics.registry.get_sample_value("chip_dead_letters_total", {"reason": reason}) or 0


async def outage_outliving_the_inbound_expiry(start_chip, bound, channel, courier, texts, **settings):
    """A chip whose visitor wrote `texts` while Courier was down for longer than --inbound-expiry:
    every one given up (a dead letter); then Courier is back."""
    server = await start_chip(retry=FAST, inbound_expiry=1.0, **settings)
    visitor = await bound(server, channel)
    await courier.wait_for(lambda: courier.of_type("chat_started", visitor.chat_id))
    courier.fail_with, courier.fail_error = 503, "upstream down"
    for text in texts:
        await visitor.send({"type": "send_msg", "text": text})
    assert await wait_until(lambda: kept(server, "expired") == len(texts), timeout=10)
    courier.fail_with = 0
    return server, visitor


async def test_a_replay_after_a_courier_outage_delivers_every_message_once_in_order(
    admin, start_chip, bound, channel, courier
):
    texts = [f"m{i}" for i in range(6)]
    server, visitor = await outage_outliving_the_inbound_expiry(start_chip, bound, channel, courier, texts)
    assert courier.of_type("msg_in", visitor.chat_id) == []

    ran = await admin("dead-letters")
    assert ran.status == 0 and ran.out.count(" expired ") == 6 and "503: upstream down" in ran.out, ran
    letters = json.loads((await admin("dead-letters", "--json", "--reason", "expired")).out)
    assert [letter["event"]["msg"]["text"] for letter in letters] == texts
    shown = await admin("dead-letters", "show", letters[0]["id"])
    assert shown.status == 0 and '"text": "m0"' in shown.out and "first error" in shown.out, shown

    # two operators at once: each letter goes back once
    one, other = await asyncio.gather(
        admin("dead-letters", "replay", "--all"), admin("dead-letters", "replay", "--all")
    )
    assert one.status == other.status == 0, (one, other)
    assert (one.out + other.out).count("back in the courier queue") == 6, (one, other)
    await courier.wait_for(lambda: len(courier.of_type("msg_in", visitor.chat_id)) == 6)
    assert (await admin("dead-letters")).out.strip() == "no dead letters"
    assert (await admin("dead-letters", "replay", "--all")).out.strip() == "no dead letters"
    await asyncio.sleep(0.5)  # time for a letter replayed twice to be posted again
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == texts


async def test_letters_named_out_of_order_are_replayed_in_the_order_given_up(
    admin, start_chip, bound, channel, courier
):
    texts = ["first", "second", "third"]
    server, visitor = await outage_outliving_the_inbound_expiry(start_chip, bound, channel, courier, texts)
    ids = [letter["id"] for letter in await server.services.dead_letters.all()]
    ran = await admin("dead-letters", "replay", ids[2], ids[0], ids[1], "--json")
    assert ran.status == 0 and [r["result"] for r in json.loads(ran.out)] == ["back in the courier queue"] * 3
    await courier.wait_for(lambda: len(courier.of_type("msg_in", visitor.chat_id)) == 3)
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == texts


async def test_a_message_replayed_goes_back_to_the_outbox_and_reaches_the_visitor(
    admin, start_chip, channel, rows, post_msg, courier, connect
):
    chat_id = "r" * 24
    rows.contact(channel["org_id"], channel["uuid"], chat_id)
    server = await start_chip(msg_expiry=0.5)
    await post_msg(channel["uuid"], chat_id, {"id": 41, "text": "we close at six", "origin": "flow"}, server=server)
    await asyncio.sleep(0.6)
    assert await server.services.expiry.sweep() == 1
    await courier.wait_for(lambda: courier.of_type("msg_status", chat_id))
    [letter] = json.loads((await admin("dead-letters", "--json", "--channel", channel["uuid"])).out)
    assert (letter["reason"], letter["msg_key"]) == ("msg_expired", "41")

    visitor = await connect(server, channel["uuid"])
    assert (await visitor.start(chat_id))["type"] == "chat_resumed"
    await visitor.silent(0.2)
    ran = await admin("dead-letters", "replay", letter["id"])
    assert ran.status == 0 and "back in the outbox" in ran.out, ran
    out = (await visitor.expect("chat_out"))["msg_out"]
    assert (out["id"], out["text"]) == (41, "we close at six")
    await visitor.send({"type": "ack_chat", "msg_id": 41})
    await courier.wait_for(lambda: len(courier.of_type("msg_status", chat_id)) == 2)
    assert [e["status"]["status"] for e in courier.of_type("msg_status", chat_id)] == ["failed", "delivered"]


async def test_letters_are_dropped_by_id_or_all_of_a_reason_and_an_unknown_id_is_status_1(
    admin, start_chip, bound, channel, courier
):
    server, visitor = await outage_outliving_the_inbound_expiry(start_chip, bound, channel, courier, ["a", "b"])
    courier.fail_with, courier.fail_error = 400, "secret incorrect"
    await visitor.send({"type": "send_msg", "text": "refused"})
    assert await wait_until(lambda: kept(server, "rejected") == 1)
    first, second, refused = await server.services.dead_letters.all()

    ran = await admin("dead-letters", "drop", first["id"], "0-999")
    assert ran.status == 1 and "dropped" in ran.out and "0-999  not found" in ran.out, ran
    ran = await admin("dead-letters", "drop", "--all", "--reason", "expired")
    assert ran.status == 0 and f"{second['id']}  dropped" in ran.out, ran
    assert [letter["id"] for letter in await server.services.dead_letters.all()] == [refused["id"]]
    assert (await admin("dead-letters", "show", first["id"])).status == 1
    assert (await admin("dead-letters", "show", "not-an-id")).status == 1
    assert json.loads((await admin("status", "--json")).out)["dead_letters"] == {"rejected": 1}


async def test_the_admin_replays_on_a_cluster(admin, cluster, start_chip, bound, channel, courier):
    texts = ["on", "a", "cluster"]
    server, visitor = await outage_outliving_the_inbound_expiry(
        start_chip, bound, channel, courier, texts, valkey=cluster.url
    )
    ran = await admin("status", valkey=cluster.url)
    assert ran.status == 0 and "REASON   LETTERS\nexpired  3" in ran.out, ran
    ran = await admin("dead-letters", "replay", "--all", valkey=cluster.url)
    assert ran.status == 0 and ran.out.count("back in the courier queue") == 3, ran
    await courier.wait_for(lambda: len(courier.of_type("msg_in", visitor.chat_id)) == 3)
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", visitor.chat_id)] == texts


@pytest.mark.parametrize(
    "args, says",
    [
        (["--help"], "dead-letters"),
        (["dead-letters", "--help"], "replay"),
        (["dead-letters", "replay", "--help"], "once"),
        (["status", "--help"], "--max-backlog-age"),
        (["chat", "--help"], "outbox"),
    ],
)
async def test_help_says_what_each_command_does(admin, args, says):
    ran = await admin(*args, settings=False)
    assert ran.status == 0 and "--valkey" in ran.out and "--json" in ran.out and says in ran.out, ran


async def test_a_letter_kept_in_part_is_not_replayed(admin, start_chip, channel):
    server = await start_chip()
    key = keys.chat_key(channel["uuid"], "p" * 24)
    [letter_id] = await server.services.dead_letters.keep(
        key, "too_large", [{"kind": "courier", "event": {"type": "msg_in", "msg": {"text": "x" * 600_000}}}]
    )
    ran = await admin("dead-letters", "replay", letter_id)
    assert ran.status == 1 and "not replayable: kept in part" in ran.out, ran
    assert "kept in part (600" in (await admin("dead-letters")).out
    assert await server.services.dead_letters.get(letter_id) is not None
