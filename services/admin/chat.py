"""`chip.py admin chat <channel> <chat id>`: what chip holds for one chat, and what RapidPro knows of it."""

import time
import uuid

import orjson

from models import Channel, ContactURN, DatabaseUnavailable
from services import events
from services.admin.letters import what
from services.admin.report import age, as_json, short, table
from services.admin.stores import Stores
from services.store import keys


async def outbox(stores: Stores, key: str) -> list[dict]:
    """The chat's waiting messages, oldest first. How often each was pushed is kept by the socket's
    process alone (services/delivery/push.py), so it is not shown."""
    redis = stores.redis
    ids = await redis.zrange(keys.outbox_order(key), 0, -1)
    frames = await redis.hmget(keys.outbox_frames(key), ids) if ids else []
    found = []
    for msg_key, frame in zip(ids, frames):
        if frame is not None:
            out = orjson.loads(frame)["msg_out"]
            found.append(
                {
                    "id": msg_key.decode(),
                    "queued": events.msg_time(out),
                    "text": out.get("text", ""),
                    "attachments": len(out.get("attachments", [])),
                    "origin": out.get("origin"),
                }
            )
    return found


async def courier_queue(stores: Stores, key: str) -> dict:
    """The chat's events waiting for Courier, when it falls due, its failed posts in a row, and
    whether a process holds its lock (is posting now)."""
    async with stores.redis.pipeline(transaction=False) as pipe:
        pipe.lrange(keys.courier_events(key), 0, -1)
        pipe.zscore(keys.courier_due_of(key), key)
        pipe.get(keys.courier_attempts(key))
        pipe.exists(keys.courier_lock(key))
        raw, due, attempts, locked = await pipe.execute()
    queued = [orjson.loads(item) for item in raw]
    return {
        "events": [{"queued": item["t"], "event": item["e"]} for item in queued],
        "due": due,
        "failed_posts": int(attempts or 0),
        "posting": bool(locked),
    }


def rapidpro(channel_uuid: str, chat_id: str) -> dict:
    """The channel, and the chat's URN and contact, as RapidPro's tables have them (whatever their state)."""
    try:
        canonical = str(uuid.UUID(channel_uuid))
    except ValueError:
        return {"channel": None, "urn": None, "contact": None}
    channel = Channel.select().where(Channel.uuid == canonical).first()
    found = {"channel": None, "urn": None, "contact": None}
    if channel is None:
        return found
    found["channel"] = {
        "id": channel.id,
        "name": channel.name,
        "type": channel.channel_type,
        "active": channel.is_active,
        "org_id": channel.org_id,
    }
    urn = ContactURN.for_chat(channel.org_id, chat_id)
    if urn is not None:
        found["urn"] = {"id": urn.id, "identity": urn.identity, "display": urn.display}
        contact = urn.contact
        found["contact"] = {
            "id": contact.id,
            "uuid": contact.uuid,
            "name": contact.name,
            "status": contact.status,
            "active": contact.is_active,
            "gone": contact.gone,
        }
    return found


async def run(stores: Stores, args) -> int:
    key = keys.chat_key(args.channel, args.chat_id)
    email = await stores.redis.get(keys.visitor_email(key))
    found = {
        "channel_uuid": args.channel,
        "chat_id": args.chat_id,
        "shard": keys.shard(key),
        "email": email.decode() if email else None,
        "outbox": await outbox(stores, key),
        "courier": await courier_queue(stores, key),
        "dead_letters": [
            letter for letter in await stores.dead_letters.all(args.channel) if letter["chat"] == args.chat_id
        ],
    }
    try:
        found["rapidpro"] = await stores.db.run(rapidpro, args.channel, args.chat_id)
    except DatabaseUnavailable as e:
        found["rapidpro"] = {"error": f"the database does not answer: {e.__cause__ or e}"}
    print(as_json(found) if args.json else text(found, time.time()))
    return 0


def text(found: dict, now: float) -> str:
    db = found["rapidpro"]
    lines = [f"chat {found['chat_id']} of channel {found['channel_uuid']} (shard {found['shard']})"]
    if "error" in db:
        lines.append(f"rapidpro: {db['error']}")
    else:
        channel, contact, urn = db["channel"], db["contact"], db["urn"]
        lines.append(
            "channel: "
            + (
                f"{channel['name']} (id {channel['id']}, {channel['type']}, org "
                f"{channel['org_id']}{'' if channel['active'] else ', inactive'})"
                if channel
                else "not in the database"
            )
        )
        lines.append(
            "contact: "
            + (
                " ".join(str(part) for part in (contact["id"], contact["uuid"], contact["name"]) if part)
                + f", status {contact['status']}"
                + (f" ({contact['gone']})" if contact["gone"] else "")
                if contact
                else "none (Courier has not made one)"
            )
        )
        lines.append("urn: " + (f"{urn['identity']} (id {urn['id']}, display {urn['display'] or '-'})" if urn else "-"))
    lines.append(f"email (set_email): {found['email'] or '-'}")
    messages = found["outbox"]
    lines += ["", f"outbox: {len(messages)} message(s) waiting for the visitor"]
    if messages:
        lines.append(
            table(
                ["MSG", "AGE", "ORIGIN", "TEXT"],
                [
                    [
                        m["id"],
                        age(m["queued"], now),
                        m["origin"],
                        short(m["text"]) + (f" (+{m['attachments']} attachment(s))" if m["attachments"] else ""),
                    ]
                    for m in messages
                ],
            )
        )
    courier = found["courier"]
    due = courier["due"]
    lines += [
        "",
        f"courier queue: {len(courier['events'])} event(s) waiting, {courier['failed_posts']} failed "
        f"post(s) in a row"
        + (", being posted now" if courier["posting"] else "")
        + (f", due {'now' if due <= now else 'in ' + age(now, due)}" if due is not None else ""),
    ]
    if courier["events"]:
        lines.append(
            table(
                ["#", "AGE", "EVENT"],
                [[i, age(item["queued"], now), what(item["event"])] for i, item in enumerate(courier["events"], 1)],
            )
        )
    letters = found["dead_letters"]
    lines += ["", f"dead letters: {len(letters)}"]
    if letters:
        lines.append(
            table(
                ["ID", "GIVEN UP", "REASON", "WHAT"],
                [[letter["id"], f"{age(letter['at'], now)} ago", letter["reason"], what(letter)] for letter in letters],
            )
        )
    return "\n".join(lines)
