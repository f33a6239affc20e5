"""Dead letters: what chip gave up (an event Courier never took, an outgoing message no visitor came
for), kept in Redis for an operator to see, replay or drop (`chip.py admin dead-letters`).

A letter is JSON: its ID, kind ("courier": the event as it would be posted; "outbox": the message's
key and its chat_out frame as it would be pushed), channel, chat, reason, why, when, which process
gave it up, and where known the first and last error Courier gave and how many posts failed.

Invariants:
- a letter lives in its chat's shard ("{sN}"), like every key of the chat, so that each script
  touches one slot; its ID is "<shard>-<n>", n from the shard's counter, so IDs are never reused
  and sort a chat's letters in the order they were given up;
- a shard keeps at most a 128th (keys.SHARDS) of --dead-letter-max letters, and of
  --dead-letter-max-per-channel per channel: past either, its oldest go first (counted);
- a letter older than --dead-letter-ttl goes at the next letter of its shard or the next trim (a
  minute at most while chip runs); with a TTL of 0 none is kept;
- the reasons' counts are changed only with the letters, by the scripts that add or remove them.
"""

import asyncio
import logging
import math
import time

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError

from services.periodic import Periodic
from services.store import keys
from services.store.scripts import Scripts

logger = logging.getLogger(__name__)

# the most of a given-up event or frame a letter keeps: more than any frame (a /wc/send body is at
# most --max-body-bytes, 256 KiB by default) or any event Courier could take; an event over Courier's
# 1 MiB body limit (reason too_large) is kept in part, and cannot be replayed
MOST_KEPT = 512 * 1024
TRIM_EVERY = 60.0


def shard_of(letter_id: str) -> int | None:
    """The shard a letter ID names; None when it names none."""
    shard, _, number = str(letter_id).partition("-")
    if not (shard.isdigit() and number.isdigit()) or int(shard) >= keys.SHARDS:
        return None
    return int(shard)


def order(letter: dict) -> tuple:
    """Where a letter sorts: its shard, then the order its shard gave it up in."""
    shard, _, number = letter["id"].partition("-")
    return int(shard), int(number)


class DeadLetters:
    def __init__(
        self,
        redis: aioredis.Redis,
        scripts: Scripts,
        *,
        ttl: float,
        most: int,
        most_per_channel: int,
        instance: str = "",
        tally=None,
    ):
        """`tally(reason, kept, dropped)`, if given, is told of every letter written and of those its
        writing dropped to keep within the bounds (the metrics)."""
        self.redis = redis
        self.ttl = ttl
        self.most = max(1, math.ceil(most / keys.SHARDS))
        self.most_per_channel = max(1, math.ceil(most_per_channel / keys.SHARDS))
        self.instance = instance
        self.tally = tally
        self._add = scripts.load("dead_letter_add")
        self._trim = scripts.load("dead_letter_trim")
        self._drop = scripts.load("dead_letter_drop")
        self._replay = scripts.load("dead_letter_replay")
        self._loop = Periodic(self.trim, TRIM_EVERY, jitter=0.1, name="the dead letter trim")
        self._pending: set[asyncio.Task] = set()  # letters being written that nobody awaits

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def keep(
        self, key: str, reason: str, letters: list[dict], why: str = "", errors: dict = None
    ) -> asyncio.Task | None:
        """Keep `letters` given up from chat `key` (each {"kind": ..., "event" or "frame": ...}). The
        script is called at once: it joins this turn's pipeline, ahead of any script called after it
        (the commit that drops the events from the chat's list). `errors`: first_error, last_error,
        their times and attempts (failed posts), where known. The task answers with the new IDs (a
        failure is logged, and raised to whoever awaits it); None when none are kept."""
        if not self.enabled or not letters:
            return None
        channel_uuid, chat_id = keys.split_chat_key(key)
        shard, now = keys.shard(key), time.time()
        about = {
            "reason": reason,
            "channel": channel_uuid,
            "chat": chat_id,
            "at": now,
            "why": why,
            "instance": self.instance,
            **(errors or {}),
        }
        docs = b"\n".join(orjson.dumps({**about, **_within_bounds(letter)}) for letter in letters)
        added = self._add(
            letters=keys.dead_letters(shard),
            index=keys.dead_index(shard),
            channel_letters=keys.dead_channel(shard, channel_uuid),
            reasons=keys.dead_reasons(shard),
            seq=keys.dead_seq(shard),
            shard=shard,
            reason=reason,
            docs=docs,
            now=now,
            ttl=self.ttl,
            most=self.most,
            most_per_channel=self.most_per_channel,
        )
        task = asyncio.ensure_future(self._kept(added, key, reason, len(letters)))
        self._pending.add(task)
        task.add_done_callback(self._settled)
        return task

    async def _kept(self, added: asyncio.Future, key: str, reason: str, count: int) -> list[str]:
        try:
            dropped, *ids = await added
        except (RedisError, RedisClusterException, OSError) as e:
            logger.error("%d dead letter(s) of chat %s (%s) not kept: %s", count, key, reason, e)
            raise
        ids = [i.decode() for i in ids]
        logger.info("kept %d dead letter(s) of chat %s (%s): %s", count, key, reason, " ".join(ids))
        if dropped:
            logger.warning(
                "dropped the %d oldest dead letter(s) of shard %d to keep within the bounds", dropped, keys.shard(key)
            )
        if self.tally is not None:
            self.tally(reason, count, dropped)
        return ids

    def _settled(self, task: asyncio.Task):
        self._pending.discard(task)
        if not task.cancelled():
            task.exception()  # logged by _kept: asyncio need not report it again when nobody awaits it

    # the trim loop of a running chip

    def start(self):
        if self.enabled:
            self._loop.start()

    async def stop(self, timeout: float = 2.0):
        await self._loop.stop(timeout)

    async def trim(self) -> int:
        """Drop every shard's letters older than the TTL; how many went."""
        cutoff = time.time() - self.ttl
        try:
            gone = await asyncio.gather(
                *(
                    self._trim(
                        letters=keys.dead_letters(n),
                        index=keys.dead_index(n),
                        reasons=keys.dead_reasons(n),
                        cutoff=cutoff,
                    )
                    for n in range(keys.SHARDS)
                )
            )
        except (RedisError, RedisClusterException, OSError) as e:  # the next trim makes up for it
            logger.warning("dead letters not trimmed: %s", e)
            return 0
        return sum(gone)

    # reading and mending (chip.py admin)

    async def counts(self) -> dict[str, int]:
        """Letters kept, by reason."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for number in range(keys.SHARDS):
                pipe.hgetall(keys.dead_reasons(number))
            found = await pipe.execute()
        totals: dict[str, int] = {}
        for shard in found:
            for reason, count in shard.items():
                totals[reason.decode()] = totals.get(reason.decode(), 0) + int(count)
        return {reason: count for reason, count in sorted(totals.items()) if count > 0}

    async def all(self, channel: str = None) -> list[dict]:
        """Every letter kept (of `channel` only, if given), in the order each shard gave them up."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for number in range(keys.SHARDS):
                pipe.zrange(keys.dead_channel(number, channel) if channel else keys.dead_index(number), 0, -1)
            ids = await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            asked = [(number, found) for number, found in enumerate(ids) if found]
            for number, found in asked:
                pipe.hmget(keys.dead_letters(number), found)
            found = await pipe.execute()
        # a channel's index may still name letters dropped since: read past them
        letters = [orjson.loads(raw) for shard in found for raw in shard if raw is not None]
        return sorted(letters, key=order)

    async def get(self, letter_id: str) -> dict | None:
        shard = shard_of(letter_id)
        raw = await self.redis.hget(keys.dead_letters(shard), letter_id) if shard is not None else None
        return orjson.loads(raw) if raw is not None else None

    async def drop(self, letter_id: str) -> bool:
        """Drop a letter; False if there was none by that ID."""
        shard = shard_of(letter_id)
        if shard is None:
            return False
        return bool(
            await self._drop(
                letters=keys.dead_letters(shard),
                index=keys.dead_index(shard),
                reasons=keys.dead_reasons(shard),
                id=letter_id,
            )
        )

    def replay(self, letter: dict, payload: bytes | str, publish: str) -> asyncio.Future:
        """Put `letter` back (an event at the end of its chat's Courier list, `payload` as that list
        stores it; a message at the end of its chat's outbox, `payload` its frame) and drop it, in one
        step; `publish`: the command that wakes a chat's process (WakeChannels.publish). Answers 1
        queued again, 2 dropped only (the outbox had the message already), 0 no such letter (replayed
        or dropped since). Calls made in one turn go in one pipeline, in order."""
        key = keys.chat_key(letter["channel"], letter["chat"])
        shard = keys.shard(key)
        return self._replay(
            letters=keys.dead_letters(shard),
            index=keys.dead_index(shard),
            reasons=keys.dead_reasons(shard),
            events=keys.courier_events(key),
            due=keys.courier_due_of(key),
            order=keys.outbox_order(key),
            frames=keys.outbox_frames(key),
            seq=keys.seq(key),
            outboxes=keys.outboxes_of(key),
            id=letter["id"],
            kind=letter["kind"],
            payload=payload,
            msg_key=letter.get("msg_key", ""),
            chat=key,
            now=time.time(),
            wake=keys.wake_channel(key),
            publish=publish,
        )


def _within_bounds(letter: dict) -> dict:
    """The letter, or, when what it keeps is larger than MOST_KEPT, its start (not replayable)."""
    body = {name: value for name, value in letter.items() if name in ("event", "frame")}
    text = orjson.dumps(body)
    if len(text) <= MOST_KEPT:
        return letter
    kept = {name: value for name, value in letter.items() if name not in body}
    return {**kept, "truncated": len(text), "part": text[:MOST_KEPT].decode(errors="ignore")}
