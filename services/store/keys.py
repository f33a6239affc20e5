"""Every Redis key and channel chip uses, in one place (the Lua scripts take them as arguments).

A chat is addressed by its chat key, "<channel uuid>:<chat id>": chat IDs are unique per org, so
the channel keeps two orgs' chats apart.
"""

PREFIX = "chip"

# global
SEQ = f"{PREFIX}:seq"                      # counter that orders outbox entries
OUTBOXES = f"{PREFIX}:outboxes"            # zset: chat key -> when its oldest message was queued
COURIER_DUE = f"{PREFIX}:courier:due"      # zset: chat key -> when its Courier events are due
COURIER_ATTEMPTS = f"{PREFIX}:courier:attempts"  # hash: chat key -> failed attempts in a row


def chat_key(channel_uuid: str, chat_id: str) -> str:
    return f"{channel_uuid}:{chat_id}"


def split_chat_key(key: str) -> tuple[str, str]:
    channel_uuid, chat_id = key.split(":", 1)
    return channel_uuid, chat_id


def msg_key(msg_id) -> str:
    """How an outgoing message is named in an outbox: Courier's integer id or uuid, as text, in
    lower case (a widget may ack a uuid in either case)."""
    return str(msg_id).lower()


def outbox_order(key: str) -> str:
    return f"{PREFIX}:out:{key}:order"     # zset: message key -> sequence number


def outbox_frames(key: str) -> str:
    return f"{PREFIX}:out:{key}:frames"    # hash: message key -> chat_out frame, ready to send


def wake_channel(key: str) -> str:
    return f"{PREFIX}:wake:{key}"          # pub/sub: a message was queued for this chat


def chat_from_wake(channel: str) -> str:
    return channel[len(PREFIX) + len(":wake:"):]


def visitor_email(key: str) -> str:
    return f"{PREFIX}:email:{key}"         # string: the email the visitor gave (set_email), kept a year


def courier_events(key: str) -> str:
    return f"{PREFIX}:courier:{key}"       # list: events waiting to be posted to Courier


def courier_lock(key: str) -> str:
    return f"{PREFIX}:courier:{key}:lock"  # who is posting this chat's events right now


def expire_lock(key: str) -> str:
    return f"{PREFIX}:expire:{key}"  # which process is giving up this chat's stale messages right now


def new_chats(channel_uuid: str, client_ip: str) -> str:
    return f"{PREFIX}:limit:chats:{channel_uuid}:{client_ip}"  # counter of new chats, expires with its window
