"""The key layout (services/store/keys.py), one for a server, Sentinel and a cluster: every key of a
chat, and its shard's sweep indexes, live in one slot; the shards spread over the slots."""

from redis.cluster import key_slot

from services.store import keys


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_every_key_of_a_chat_its_sweep_indexes_and_its_dead_letters_share_one_slot():
    for n in range(500):
        chat = keys.chat_key("0d1e7a46-2f3b-4c6e-9a35-6f1b9d7c8e21", f"chat{n:021d}")
        chat_keys = [
            keys.outbox_order(chat),
            keys.outbox_frames(chat),
            keys.seq(chat),
            keys.outboxes_of(chat),
            keys.visitor_email(chat),
            keys.courier_events(chat),
            keys.courier_due_of(chat),
            keys.courier_attempts(chat),
            keys.courier_lock(chat),
            keys.expire_lock(chat),
            keys.wake_channel(chat),
        ]
        shard = keys.shard(chat)
        chat_keys += [
            keys.dead_letters(shard),
            keys.dead_index(shard),
            keys.dead_reasons(shard),
            keys.dead_seq(shard),
            keys.dead_channel(shard, "0d1e7a46-2f3b-4c6e-9a35-6f1b9d7c8e21"),
        ]
        assert len({slot(k) for k in chat_keys}) == 1, chat


def test_chats_spread_over_every_shard_and_the_shards_over_many_slots():
    shards = {keys.shard(keys.chat_key("c", f"chat{n}")) for n in range(5000)}
    assert shards == set(range(keys.SHARDS))
    slots = {slot(keys.outboxes(n)) for n in range(keys.SHARDS)}
    assert len(slots) == keys.SHARDS  # no two shards pinned to one slot, so resharding can split them
    # a cluster's 3 primaries hold slots 0-5460, 5461-10922, 10923-16383: each gets a fair part
    per_primary = [sum(lo <= s <= hi for s in slots) for lo, hi in ((0, 5460), (5461, 10922), (10923, 16383))]
    assert min(per_primary) > keys.SHARDS / 3 * 0.6, per_primary


def test_a_chat_key_comes_back_from_its_wake_channel():
    chat = keys.chat_key("0d1e7a46-2f3b-4c6e-9a35-6f1b9d7c8e21", "65vbbDAQCdPdEWlEhDGy4utO")
    assert keys.chat_from_wake(keys.wake_channel(chat)) == chat
