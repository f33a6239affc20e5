"""`chip.py admin dead-letters`: list, show, replay and drop what chip gave up
(services/store/deadletters.py)."""

import asyncio
import time

import orjson

from services.admin.report import age, as_json, short, table, when
from services.admin.stores import Stores
from services.courier.queue import encode_event
from services.store.deadletters import order

# what replay() answers, per letter
REPLAYED = {1: "back in the queue", 2: "dropped: the outbox has it already", 0: "not found"}


def what(item: dict) -> str:
    """A letter, or an event for Courier, in a few words."""
    if item.get("truncated"):
        return f"{item.get('kind')}: kept in part ({item['truncated']} bytes)"
    if item.get("kind") == "outbox":
        out = orjson.loads(item["frame"])["msg_out"]
        return f"msg {item['msg_key']}: {short(out.get('text'))}"
    event = item.get("event", item)
    kind = event.get("type", "?")
    if kind == "msg_in":
        return f"msg_in: {short(event.get('msg', {}).get('text'))}"
    if kind == "msg_status":
        status = event.get("status", {})
        return f"msg_status: {status.get('msg_uuid') or status.get('msg_id')} {status.get('status')}"
    return kind


def chosen(letters: list[dict], args) -> list[dict]:
    return [letter for letter in letters if args.reason in (None, letter["reason"])]


async def run(stores: Stores, args) -> int:
    if args.action == "show":
        return await show(stores, args)
    if args.action in ("replay", "drop"):
        return await mend(stores, args)
    letters = chosen(await stores.dead_letters.all(args.channel), args)
    letters.sort(key=lambda letter: letter["at"])
    shown = letters[-args.limit :] if args.limit else letters
    if args.json:
        print(as_json(shown))
        return 0
    if not shown:
        print("no dead letters")
        return 0
    now = time.time()
    print(
        table(
            ["ID", "GIVEN UP", "REASON", "CHANNEL", "CHAT", "WHAT", "POSTS", "LAST ERROR"],
            [
                [
                    letter["id"],
                    f"{age(letter['at'], now)} ago",
                    letter["reason"],
                    letter["channel"],
                    letter["chat"],
                    what(letter),
                    letter.get("attempts"),
                    short(letter.get("last_error"), 50),
                ]
                for letter in shown
            ],
        )
    )
    if len(shown) < len(letters):
        print(f"... and {len(letters) - len(shown)} older (--limit 0 lists them all)")
    return 0


async def show(stores: Stores, args) -> int:
    letter = await stores.dead_letters.get(args.ids[0])
    if letter is None:
        print(f"no dead letter {args.ids[0]}")
        return 1
    if args.json:
        print(as_json(letter))
        return 0
    rows = [[name, letter.get(name)] for name in ("id", "reason", "why", "kind", "channel", "chat", "instance")]
    rows += [
        ["given up", when(letter["at"])],
        ["failed posts", letter.get("attempts")],
        [
            "first error",
            f"{when(letter['first_error_at'])} {letter['first_error']}" if letter.get("first_error") else None,
        ],
        ["last error", f"{when(letter['last_error_at'])} {letter['last_error']}" if letter.get("last_error") else None],
    ]
    if letter.get("msg_key"):
        rows.append(["message", letter["msg_key"]])
    print(table(["FIELD", "VALUE"], rows))
    if letter.get("truncated"):
        print(f"\nkept in part: the first {len(letter['part'])} of {letter['truncated']} bytes\n{letter['part']}")
    else:
        body = letter["event"] if letter["kind"] == "courier" else orjson.loads(letter["frame"])
        print(
            "\n"
            + (
                "event, as it would be posted to Courier:"
                if letter["kind"] == "courier"
                else "chat_out frame, as it would be pushed:"
            )
        )
        print(as_json(body))
    return 0


async def mend(stores: Stores, args) -> int:
    """Replay or drop the letters named, or --all of those chosen; 1 when a letter named was not found
    (or cannot be replayed)."""
    dead = stores.dead_letters
    if args.all:
        letters = chosen(await dead.all(args.channel), args)
    else:
        found = [await dead.get(letter_id) for letter_id in args.ids]
        letters = sorted((letter for letter in found if letter is not None), key=order)
    results = {letter_id: "not found" for letter_id in args.ids}
    if args.action == "drop":
        for letter in letters:
            results[letter["id"]] = "dropped" if await dead.drop(letter["id"]) else "not found"
    else:
        publish = await stores.publish_command()
        replayable = [letter for letter in letters if not letter.get("truncated")]
        for letter in letters:
            if letter.get("truncated"):
                results[letter["id"]] = "not replayable: kept in part"
        # made in one turn, in the order given up: one pipeline, each chat's letters in their order
        answers = await asyncio.gather(*(dead.replay(letter, _payload(letter), publish) for letter in replayable))
        for letter, answer in zip(replayable, answers):
            results[letter["id"]] = (
                REPLAYED[answer]
                if answer != 1
                else ("back in the courier queue" if letter["kind"] == "courier" else "back in the outbox")
            )
    if args.json:
        print(as_json([{"id": letter_id, "result": result} for letter_id, result in results.items()]))
    elif results:
        print(table(["ID", "RESULT"], [[letter_id, result] for letter_id, result in results.items()]))
    else:
        print("no dead letters")
    undone = [result for result in results.values() if result in ("not found", "not replayable: kept in part")]
    return 1 if undone and not args.all else 0


def _payload(letter: dict) -> bytes | str:
    """What goes back: the event as the Courier list stores it (queued now, so that --inbound-expiry
    counts again from now), or the message's frame as it was."""
    return encode_event(letter["event"]) if letter["kind"] == "courier" else letter["frame"]
