"""marshmallow schemas for the widget's commands and Courier's /wc/send body."""

import re
from datetime import timezone

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema

REQUIRED = {"required": "field is required", "null": "field may not be null"}
NOT_BLANK = validate.Length(min=1, error="field may not be blank")
# Courier's own pattern, which RE2 applies to the whole text; chip also refuses control characters
# in the email part, which no database column or log line should carry
COURIER_CHAT_ID = re.compile(r"[a-zA-Z0-9]{24}(:[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+)?")
ORIGINS = ("flow", "broadcast", "ticket", "chat")
LISTS = ("attachments", "quick_replies")
# the widest column RapidPro keeps an attachment (msgs_msg.attachments varchar(2048)[]) or a quick
# reply in; Courier cannot have read a longer one from it
MAX_ITEM_LENGTH = 2048
MAX_PROBLEMS = 3  # an error names this many problems at most, however many elements failed


def describe(messages) -> str:
    """marshmallow's error dict as one line a developer can act on: 'text: field may not be blank'.
    Bounded: the first few problems, then how many more there were."""
    problems = list(_problems(messages, ""))
    shown = "; ".join(problems[:MAX_PROBLEMS])
    return shown + (f"; and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else "")


def _problems(messages, prefix: str):
    for field, problem in sorted(messages.items(), key=lambda item: str(item[0])):
        name = f"{prefix}{field}"
        if isinstance(problem, dict):
            yield from _problems(problem, name + ".")
        else:
            yield f"{name}: {' '.join(str(p) for p in problem)}"


def check_list_lengths(body: dict, most: int):
    """Refuse a /wc/send body whose msg has a list of more than `most` items, before any item is
    validated (so that a million bad items cost no more than one)."""
    msg = body.get("msg")
    if not isinstance(msg, dict):
        return
    for name in LISTS:
        items = msg.get(name)
        if isinstance(items, list) and len(items) > most:
            raise ValidationError({"msg": {name: [f"more than {most} items"]}})


MSG_ID_TEXT = re.compile(r"[0-9]{1,18}|[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


class MsgId(fields.Field):
    """An outgoing message's id as chip sent it in msg_out.id: a positive integer (msgs_msg.id is a
    bigint) or a uuid string; a number in a string is taken too."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValidationError("must be a message id (integer) or uuid (string)")
        if isinstance(value, int) and not 0 < value < 2**63:
            raise ValidationError("must be a positive 64-bit integer")
        if isinstance(value, str) and not MSG_ID_TEXT.fullmatch(value):
            raise ValidationError("must be a message id (integer) or uuid (string)")
        return value


class Command(Schema):
    class Meta:
        unknown = EXCLUDE


class StartChat(Command):
    chat_id = fields.Raw(load_default=None)

    @post_load
    def only_strings(self, data, **kwargs):
        # a malformed chat_id is not an error: the visitor just gets a new chat
        if not isinstance(data.get("chat_id"), str):
            data["chat_id"] = None
        return data


class SendMsg(Command):
    # RapidPro stores the text in PostgreSQL, which cannot hold NUL: Courier would fail on it for
    # ever and hold up every later message of the chat
    text = fields.String(
        required=True,
        error_messages=REQUIRED,
        validate=[NOT_BLANK, validate.ContainsNoneOf("\x00", error="may not contain NUL characters")],
    )


class AckChat(Command):
    msg_id = MsgId(required=True, error_messages=REQUIRED)


class GetHistory(Command):
    before = fields.DateTime(
        required=True,
        error_messages={**REQUIRED, "invalid": "must be an RFC 3339 timestamp such as 2024-05-01T17:15:30.123456Z"},
    )

    @post_load
    def utc(self, data, **kwargs):
        # in UTC, because PostgreSQL refuses offsets with seconds that Python parses (+00:00:01.1)
        before = data["before"]
        if before.tzinfo is None:
            before = before.replace(tzinfo=timezone.utc)
        try:
            data["before"] = before.astimezone(timezone.utc)
        except OverflowError:  # year 1 or 9999 pushed over the edge by its offset
            raise ValidationError("out of range", "before") from None
        return data


def _printable(text: str):
    # a quoted local part may hold control characters ("a\u000bb"@x.com is a valid address), and
    # they break whatever carries the address on: an email header, a log line
    if not text.isprintable():
        raise ValidationError("may not contain control or invisible characters")


class SetEmail(Command):
    email = fields.Email(
        required=True,
        validate=[validate.Length(max=128, error="longer than 128 characters"), _printable],
        error_messages={**REQUIRED, "invalid": "not a valid email address"},
    )


class OutgoingMsg(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.Integer(strict=True, validate=validate.Range(min=1))
    uuid = fields.UUID()
    text = fields.String(required=True, error_messages=REQUIRED)
    attachments = fields.List(
        fields.String(validate=validate.Length(max=MAX_ITEM_LENGTH, error=f"longer than {MAX_ITEM_LENGTH} characters"))
    )
    quick_replies = fields.List(
        fields.String(validate=validate.Length(max=MAX_ITEM_LENGTH, error=f"longer than {MAX_ITEM_LENGTH} characters"))
    )
    origin = fields.String(
        required=True,
        error_messages=REQUIRED,
        validate=validate.OneOf(ORIGINS, error="must be one of " + ", ".join(ORIGINS)),
    )
    user_id = fields.Integer(strict=True)

    @validates_schema
    def identified(self, data, **kwargs):
        if data.get("id") is None and data.get("uuid") is None:
            raise ValidationError("id or uuid is required", "id")

    @post_load
    def uuid_text(self, data, **kwargs):
        if data.get("uuid") is not None:
            data["uuid"] = str(data["uuid"])
        return data


def _chat_id(value: str):
    if not COURIER_CHAT_ID.fullmatch(value):
        raise ValidationError("not a valid chat ID")


class Send(Schema):
    class Meta:
        unknown = EXCLUDE

    chat_id = fields.String(required=True, error_messages=REQUIRED, validate=_chat_id)
    secret = fields.String(required=True, error_messages=REQUIRED)
    msg = fields.Nested(OutgoingMsg, required=True, error_messages=REQUIRED)
