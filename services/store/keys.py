"""Every Redis key and channel chip uses, in one place (the Lua scripts take them as arguments).

A chat is addressed by its chat key, "<channel uuid>:<chat id>": chat IDs are unique per org, so
the channel keeps two orgs' chats apart.

One layout serves a single server, a primary under Sentinel and a cluster. Every chat belongs to
one of SHARDS shards, and every key of the chat carries its shard's hash tag ("{s17}"), as do the
indexes the periodic sweeps read (outboxes by age, Courier events due), which are kept per shard.
So each of a chat's Lua scripts touches one slot, and it still updates the sweeps' index in the
same step as the chat's keys. Nothing in the hot path touches a key shared by every chat; a sweep
walks the SHARDS indexes. 128 shards spread over a cluster's primaries as evenly as slots are
(CLUSTER SHARDS shows which primary holds each "{sN}"), and cost a sweep 128 reads in one round trip
per primary.
"""

import zlib

PREFIX = "chip"
SHARDS = 128


def chat_key(channel_uuid: str, chat_id: str) -> str:
    return f"{channel_uuid}:{chat_id}"


def split_chat_key(key: str) -> tuple[str, str]:
    channel_uuid, chat_id = key.split(":", 1)
    return channel_uuid, chat_id


def msg_key(msg_id) -> str:
    """How an outgoing message is named in an outbox: Courier's integer id or uuid, as text, in
    lower case (a widget may ack a uuid in either case)."""
    return str(msg_id).lower()


def shard(key: str) -> int:
    """The chat's shard: the same in every process and every release (CRC-32 of the chat key)."""
    return zlib.crc32(key.encode()) % SHARDS


def _tagged(key: str) -> str:
    return f"{PREFIX}:{{s{shard(key)}}}"


# per shard: each sweep walks all of them


def outboxes(shard_number: int) -> str:
    return f"{PREFIX}:{{s{shard_number}}}:outboxes"  # zset: chat key -> when its oldest message was queued


def courier_due(shard_number: int) -> str:
    return f"{PREFIX}:{{s{shard_number}}}:courier:due"  # zset: chat key -> when its Courier events are due


def outboxes_of(key: str) -> str:
    return outboxes(shard(key))


def courier_due_of(key: str) -> str:
    return courier_due(shard(key))


def seq(key: str) -> str:
    return f"{_tagged(key)}:seq"  # counter that orders the outbox entries of the shard's chats


# per chat


def outbox_order(key: str) -> str:
    return f"{_tagged(key)}:out:{key}:order"  # zset: message key -> sequence number


def outbox_frames(key: str) -> str:
    return f"{_tagged(key)}:out:{key}:frames"  # hash: message key -> chat_out frame, ready to send


def wake_channel(key: str) -> str:
    return f"{_tagged(key)}:wake:{key}"  # pub/sub: a message was queued for this chat


def chat_from_wake(channel: str) -> str:
    return channel.split(":wake:", 1)[1]


def visitor_email(key: str) -> str:
    return f"{_tagged(key)}:email:{key}"  # string: the email the visitor gave (set_email), kept a year


def courier_events(key: str) -> str:
    return f"{_tagged(key)}:courier:{key}"  # list: events waiting to be posted to Courier


def courier_attempts(key: str) -> str:
    return f"{_tagged(key)}:courier:{key}:attempts"  # counter: failed posts in a row


def courier_lock(key: str) -> str:
    return f"{_tagged(key)}:courier:{key}:lock"  # who is posting this chat's events right now


def expire_lock(key: str) -> str:
    return f"{_tagged(key)}:expire:{key}"  # which process is giving up this chat's stale messages right now


def new_chats(channel_uuid: str, client_ip: str) -> str:
    return f"{PREFIX}:limit:chats:{channel_uuid}:{client_ip}"  # counter of new chats, expires with its window


# dead letters: what chip gave up, per shard (services/store/deadletters.py); a letter's ID names its shard


def dead_letters(shard_number: int) -> str:
    return f"{PREFIX}:{{s{shard_number}}}:dead:letters"  # hash: letter ID -> the letter (JSON)


def dead_index(shard_number: int) -> str:
    return f"{PREFIX}:{{s{shard_number}}}:dead:index"  # zset: letter ID -> when it was given up


def dead_channel(shard_number: int, channel_uuid: str) -> str:
    return f"{PREFIX}:{{s{shard_number}}}:dead:channel:{channel_uuid}"  # zset: the channel's letter IDs -> when


def dead_reasons(shard_number: int) -> str:
    return f"{PREFIX}:{{s{shard_number}}}:dead:reasons"  # hash: reason -> letters kept


def dead_seq(shard_number: int) -> str:
    return f"{PREFIX}:{{s{shard_number}}}:dead:seq"  # counter: the shard's letter IDs, never reused


# every process's heartbeat (services/heartbeat.py), under one tag of their own


def heartbeats() -> str:
    return f"{PREFIX}:{{hb}}:processes"  # hash: process -> its state (JSON), expires a minute after the last beat


def heartbeats_seen() -> str:
    return f"{PREFIX}:{{hb}}:processes:seen"  # zset: process -> when it last beat


# the upgrade from the earlier key layout (services/store/legacy.py), under a tag of its own


def legacy_empty_since() -> str:
    return f"{PREFIX}:{{legacy}}:empty_since"  # string: when a pass first found the earlier layout empty (Unix time)
