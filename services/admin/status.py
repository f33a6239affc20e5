"""`chip.py admin status`: the processes, the backlogs and the dead letters, and whether all is well."""

import time

import orjson

from services.admin.report import age, as_json, table, when
from services.admin.stores import Stores
from services.store import keys
from services.store.heartbeats import SEEN_WITHIN, processes


async def courier_backlog(stores: Stores) -> dict:
    """The events waiting for Courier in every chat on the shards' due sets: how many, of how many
    chats, and when the oldest was queued."""
    redis = stores.redis
    async with redis.pipeline(transaction=False) as pipe:
        for number in range(keys.SHARDS):
            pipe.zrange(keys.courier_due(number), 0, -1)
        chats = [chat.decode() for shard in await pipe.execute() for chat in shard]
    async with redis.pipeline(transaction=False) as pipe:
        for chat in chats:
            pipe.llen(keys.courier_events(chat))
            pipe.lindex(keys.courier_events(chat), 0)
        found = await pipe.execute() if chats else []
    lengths, firsts = found[0::2], [first for first in found[1::2] if first is not None]
    oldest = min((orjson.loads(first)["t"] for first in firsts), default=None)
    return {"events": sum(lengths), "chats": sum(1 for n in lengths if n), "oldest": oldest}


async def outbox_backlog(stores: Stores) -> dict:
    """The messages waiting for their visitors in every outbox on the shards' indexes."""
    redis = stores.redis
    async with redis.pipeline(transaction=False) as pipe:
        for number in range(keys.SHARDS):
            pipe.zrange(keys.outboxes(number), 0, -1, withscores=True)
        chats = [(chat.decode(), score) for shard in await pipe.execute() for chat, score in shard]
    async with redis.pipeline(transaction=False) as pipe:
        for chat, _ in chats:
            pipe.zcard(keys.outbox_order(chat))
        sizes = await pipe.execute() if chats else []
    return {
        "messages": sum(sizes),
        "chats": sum(1 for n in sizes if n),
        "oldest": min((score for _, score in chats), default=None),
    }


async def run(stores: Stores, args) -> int:
    now = time.time()
    found = {
        "processes": await processes(stores.redis),
        "courier": await courier_backlog(stores),
        "outboxes": await outbox_backlog(stores),
        "dead_letters": await stores.dead_letters.counts(),
    }
    problems = []
    if not any(process.get("ready") for process in found["processes"]):
        problems.append(f"no ready chip process has beat in the last {SEEN_WITHIN:g} s")
    oldest = found["courier"]["oldest"]
    if oldest is not None and now - oldest > args.max_backlog_age:
        problems.append(
            f"the oldest event for Courier has waited {age(oldest, now)}, more than "
            f"--max-backlog-age {args.max_backlog_age:g} s"
        )
    found["problems"] = problems
    print(as_json(found) if args.json else text(found, now))
    return 1 if problems else 0


def text(found: dict, now: float) -> str:
    lines = [f"processes (beat in the last {SEEN_WITHIN:g} s): {len(found['processes'])}"]
    if found["processes"]:
        lines.append(
            table(
                ["PROCESS", "INSTANCE", "PID", "VERSION", "STATE", "SOCKETS", "STARTED", "SEEN"],
                [
                    [
                        p["process"],
                        p.get("instance"),
                        p.get("pid"),
                        p.get("version"),
                        p.get("state"),
                        p.get("sockets"),
                        f"{when(p.get('started'))} ({age(p.get('started'), now)} ago)",
                        f"{age(p['seen'], now)} ago",
                    ]
                    for p in found["processes"]
                ],
            )
        )
    courier, outboxes = found["courier"], found["outboxes"]
    lines += [
        "",
        f"courier backlog: {courier['events']} event(s) of {courier['chats']} chat(s) waiting"
        + (f", the oldest for {age(courier['oldest'], now)}" if courier["oldest"] is not None else ""),
        f"outboxes: {outboxes['messages']} message(s) of {outboxes['chats']} chat(s) waiting for their "
        "visitors" + (f", the oldest for {age(outboxes['oldest'], now)}" if outboxes["oldest"] is not None else ""),
    ]
    letters = found["dead_letters"]
    lines += ["", f"dead letters: {sum(letters.values())}"]
    if letters:
        lines.append(table(["REASON", "LETTERS"], [[reason, count] for reason, count in letters.items()]))
    lines += [""] + ([f"PROBLEM: {problem}" for problem in found["problems"]] or ["OK"])
    return "\n".join(lines)
