"""The JSON shapes of protocol.md: events to the widget and events to Courier."""

from datetime import datetime, timezone

import orjson

from models import User


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as the widget expects: 2024-05-01T17:15:30.123456Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chat_started(chat_id: str) -> dict:
    return {"type": "chat_started", "chat_id": chat_id}


def chat_resumed(chat_id: str, email) -> dict:
    return {"type": "chat_resumed", "chat_id": chat_id, "email": email or ""}


def error(code: str, message: str) -> dict:
    return {"type": "error", "code": code, "error": message}


def msg_out(
    msg_id, text: str, origin: str, time: datetime, user: dict = None, attachments=None, quick_replies=None
) -> dict:
    out = {"id": msg_id, "text": text, "origin": origin}
    if user:
        out["user"] = user
    if attachments:
        out["attachments"] = list(attachments)
    if quick_replies:
        out["quick_replies"] = list(quick_replies)
    out["time"] = rfc3339(time)
    return out


def chat_out(msg: dict) -> dict:
    return {"type": "chat_out", "msg_out": msg}


def msg_time(msg: dict) -> float:
    """A msg_out's time (when chip queued it), as epoch seconds."""
    return datetime.fromisoformat(msg["time"]).timestamp()


def queued_at(frame: str) -> float:
    """When a stored chat_out frame was queued, as epoch seconds."""
    return msg_time(orjson.loads(frame)["msg_out"])


def history(rows, storage_url: str) -> dict:
    """A `history` event from msgs_msg rows (newest first), each item a msg_in or a msg_out."""
    items = []
    for row in rows:
        if row.direction == "I":
            items.append({"msg_in": {"id": row.id, "text": row.text, "time": rfc3339(row.created_on)}})
        else:
            sender = row.created_by if row.created_by_id else None
            # Msg.history joins only a user the org may show: one it left out has no id here
            user = sender.as_json(storage_url) if isinstance(sender, User) and sender.id else None
            items.append(
                {
                    "msg_out": msg_out(
                        row.id, row.text, row.origin, row.created_on, user, row.attachments, row.quick_reply_texts
                    )
                }
            )
    return {"type": "history", "history": items}


# events to Courier


def courier_chat_started() -> dict:
    return {"type": "chat_started"}


def courier_msg_in(text: str) -> dict:
    return {"type": "msg_in", "msg": {"text": text}}


def courier_msg_status(msg_key: str, status: str) -> dict:
    """A status for an outgoing message, named the way Courier named it: integer id or uuid."""
    ref = {"msg_id": int(msg_key)} if msg_key.isascii() and msg_key.isdigit() else {"msg_uuid": msg_key}
    return {"type": "msg_status", "status": {**ref, "status": status}}
