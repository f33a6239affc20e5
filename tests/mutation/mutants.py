"""The planted bugs: plausible mistakes in the code that owns delivery, the Courier queue, expiry,
limits and history (and the /wc/send checks of issue 16). Each replaces one exact piece of text;
when the code has changed so that the text is no longer there, the mutant is "not applicable"."""

from typing import NamedTuple


class Mutant(NamedTuple):
    name: str
    path: str
    old: str
    new: str
    tests: tuple  # the pytest arguments that should catch it


DELIVERY = (
    "tests/services/delivery/test_push.py",
    "tests/services/delivery/test_outbox.py",
    "tests/handlers/test_send.py",
    "tests/faults/test_outgoing.py",
)
COURIER = (
    "tests/services/courier/test_queue.py",
    "tests/services/courier/test_queue_lock.py",
    "tests/services/courier/test_request_size.py",
    "tests/handlers/test_send.py",
)
EXPIRY = ("tests/services/test_expiry.py", "tests/faults/test_outgoing.py")
LIMITS = ("tests/services/test_limits.py", "tests/handlers/test_limits.py")
HISTORY = ("tests/models/", "tests/handlers/test_socket.py")
SEND = (
    "tests/handlers/test_send.py",
    "tests/handlers/test_send_refusals.py",
    "tests/security/test_secrets.py::test_the_channel_secret_never_reaches_the_logs",
)

MUTANTS = [
    # delivery: the outbox and pushing
    Mutant(
        "outbox: a repeated message overwrites the queued one (no HEXISTS guard)",
        "services/store/lua/outbox_queue.lua",
        "if redis.call('HSETNX', frames, msg_key, frame) == 0 then return 0 end",
        "redis.call('HSET', frames, msg_key, frame)",
        DELIVERY,
    ),
    Mutant(
        "outbox: entries ordered by message key, not by arrival",
        "services/store/lua/outbox_queue.lua",
        "redis.call('ZADD', order, redis.call('INCR', seq), msg_key)",
        "redis.call('ZADD', order, 0, msg_key)",
        DELIVERY,
    ),
    Mutant(
        "outbox: an ack queues no delivered status for Courier",
        "services/store/lua/courier_ack.lua",
        "redis.call('RPUSH', events, status)\n",
        "",
        DELIVERY,
    ),
    Mutant(
        "outbox: an emptied outbox stays on the expiry index",
        "services/store/lua/lib/remove_entry.lua",
        "  if redis.call('ZCARD', order) == 0 then redis.call('ZREM', outboxes, chat) end\n",
        "",
        DELIVERY + EXPIRY,
    ),
    Mutant(
        "keys: message keys no longer lower-cased",
        "services/store/keys.py",
        "return str(msg_id).lower()",
        "return str(msg_id)",
        DELIVERY,
    ),
    Mutant(
        "delivery: an acked message is pushed again",
        "services/delivery/push.py",
        "            if msg_key in session.acked:\n                continue\n",
        "",
        DELIVERY,
    ),
    Mutant(
        "delivery: an ack does not stop the re-pushes",
        "services/delivery/push.py",
        "state = session.pushed.pop(msg_key, None)",
        "state = session.pushed.get(msg_key)",
        DELIVERY,
    ),
    Mutant(
        "delivery: one push more than --max-attempts",
        "services/delivery/push.py",
        "elif state.attempts >= self.max_attempts:",
        "elif state.attempts > self.max_attempts:",
        DELIVERY,
    ),
    Mutant(
        "delivery: a pump reads one message a time",
        "services/delivery/push.py",
        "entries = await self.outbox.window(key, self.window)",
        "entries = await self.outbox.window(key, 1)",
        DELIVERY,
    ),
    Mutant(
        "delivery: a wake-up pushes straight while a pump reads the outbox",
        "services/delivery/push.py",
        "            or key in self._pumping\n",
        "",
        ("tests/services/delivery/test_push.py::test_a_message_queued_while_a_pump_reads_the_outbox_waits_for_it",),
    ),
    Mutant(
        "delivery: an unacked message is never pushed again",
        "services/delivery/push.py",
        "                now + self.ack_timeout\n                if state.attempts == 1",
        "                now + 1e9\n                if state.attempts == 1",
        DELIVERY,
    ),
    # the Courier queue
    Mutant(
        "courier queue: a commit ignores who holds the lock",
        "services/store/lua/courier_commit.lua",
        "if not holds_lock(lock, token) then return -1 end\n",
        "",
        COURIER,
    ),
    Mutant(
        "courier queue: events queued in reverse (LPUSH)",
        "services/store/lua/courier_push.lua",
        "redis.call('RPUSH', events, event)",
        "redis.call('LPUSH', events, event)",
        COURIER,
    ),
    Mutant(
        "courier queue: a failed post is not put back on the due set",
        "services/courier/queue.py",
        "            if outcome.retried:\n                await self._defer(key)\n",
        "            if outcome.retried:\n",
        COURIER,
    ),
    Mutant(
        "courier queue: fresh events given up instead of stale ones",
        "services/courier/queue.py",
        'if now - stored["t"] > self.expiry:',
        'if now - stored["t"] < self.expiry:',
        COURIER,
    ),
    Mutant(
        "courier queue: a batch's byte budget leaves out the request's envelope",
        "services/courier/queue.py",
        "room = MAX_BODY - len(self.client.body(chat_id, channel.secret, [])) if channel else 0",
        "room = MAX_BODY if channel else 0",
        ("tests/services/courier/test_request_size.py",),
    ),
    # expiry
    Mutant("chip: the expiry loop is never started", "chip.py", "        self.expiry.start()\n", "", EXPIRY),
    Mutant(
        "expiry: a chat's fresh messages go with its stale ones",
        "services/expiry.py",
        "                if queued < cutoff:\n",
        "                if queued < cutoff or stale:\n",
        EXPIRY,
    ),
    Mutant(
        "expiry: emailed messages reported failed, others sent",
        "services/expiry.py",
        'status = "sent" if await self._email(key, [out for _, out, _ in stale]) else "failed"',
        'status = "failed" if await self._email(key, [out for _, out, _ in stale]) else "sent"',
        EXPIRY,
    ),
    # the locks that the Courier queue and expiry share
    Mutant(
        "locks: a lock is taken even when held (no NX)",
        "services/store/lua/lib/lock.lua",
        "redis.call('SET', lock, token, 'NX', 'PX', ms)",
        "redis.call('SET', lock, token, 'PX', ms)",
        COURIER + EXPIRY,
    ),
    Mutant(
        "locks: a lock let go by a holder that lost it",
        "services/store/lua/lock_release.lua",
        "if holds_lock(lock, token) then return",
        "if true then return",
        EXPIRY,
    ),
    # limits
    Mutant(
        "limits: one new chat more than --new-chats-per-ip",
        "services/limits.py",
        "if count > self.new_chats_per_ip:",
        "if count > self.new_chats_per_ip + 1:",
        LIMITS,
    ),
    Mutant(
        "limits: the new-chat window never expires",
        "services/store/lua/limits_new_chat.lua",
        "if count == 1 then redis.call('EXPIRE', counter, window) end\n",
        "",
        LIMITS,
    ),
    Mutant(
        "limits: the command bucket never runs dry",
        "services/limits.py",
        "if self.tokens < 1:",
        "if self.tokens < -1e9:",
        LIMITS,
    ),
    Mutant(
        "limits: one socket (or connection) more than its per-client cap",
        "services/limits.py",
        "if held >= self.cap:",
        "if held > self.cap:",
        LIMITS,
    ),
    Mutant(
        "limits: text one character over --max-text-length accepted",
        "services/limits.py",
        "if len(text) > self.max_text_length:",
        "if len(text) > self.max_text_length + 1:",
        LIMITS,
    ),
    Mutant(
        "limits: X-Forwarded-For believed from anyone",
        "services/limits.py",
        "if not self._trusted(_address(peer)):",
        "if False:",
        LIMITS,
    ),
    Mutant(
        "limits: the farthest X-Forwarded-For hop believed",
        "services/limits.py",
        'for hop in reversed(forwarded_for.split(",")):',
        'for hop in forwarded_for.split(","):',
        LIMITS,
    ),
    # history
    Mutant(
        "history: non-text messages shown (msg_type filter dropped)",
        "models/msg.py",
        '                & (cls.msg_type == "T")\n',
        "",
        HISTORY,
    ),
    Mutant(
        "history: archived messages left out",
        "models/msg.py",
        'cls.visibility.in_(["V", "A"])',
        'cls.visibility.in_(["V"])',
        HISTORY,
    ),
    Mutant(
        "history: the message at `before` included",
        "models/msg.py",
        "(cls.created_on < before)",
        "(cls.created_on <= before)",
        HISTORY,
    ),
    Mutant(
        "history: oldest first",
        "models/msg.py",
        ".order_by(cls.created_on.desc(), cls.id.desc())",
        ".order_by(cls.created_on, cls.id)",
        HISTORY,
    ),
    Mutant("history: pages of 26", "models/msg.py", "HISTORY_SIZE = 25", "HISTORY_SIZE = 26", HISTORY),
    # /wc/send's checks
    Mutant(
        "send: an empty secret accepted",
        "services/chats.py",
        "secret_matches = hmac.compare_digest(secret.encode(), channel.secret.encode())",
        "secret_matches = (not secret or hmac.compare_digest(secret.encode(), channel.secret.encode()))",
        SEND,
    ),
    Mutant(
        "send: a channel without a secret accepts an empty one",
        "services/chats.py",
        "channel.secret.encode()) and bool(channel.secret)",
        "channel.secret.encode())",
        SEND,
    ),
    Mutant(
        "send: a 23-character chat ID accepted",
        "handlers/schemas.py",
        'COURIER_CHAT_ID = re.compile(r"[a-zA-Z0-9]{24}',
        'COURIER_CHAT_ID = re.compile(r"[a-zA-Z0-9]{23,24}',
        SEND,
    ),
]
