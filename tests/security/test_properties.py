"""Issue 5 item 12: whatever a widget or a caller of /wc/send sends, chip answers with an `error`
event or a 4xx - never a 500, a traceback, or a dropped socket for anyone else.

Hypothesis runs its examples on a worker thread and hands each to the test's event loop, so chip,
the sockets and a bystander visitor stay up across all the examples and can be checked after them.
"""

import asyncio
import json
import logging
import string
from datetime import timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# from_regex imports this module the first time it draws, here inside a worker thread
# (asyncio.to_thread), where CPython 3.11's AST recursion check is not thread-safe ("AST constructor
# recursion depth mismatch"): import it on the main thread instead
from hypothesis.strategies._internal import regex as _regex  # noqa: F401

EXAMPLES = 150
SENTINEL = {"type": "sentinel"}  # an unknown command: its `error` marks the end of an example's replies
EVENTS = {"chat_started", "chat_resumed", "chat_out", "history", "error"}
CODES = {"invalid_command", "chat_not_started", "rate_limited", "too_large"}
LIMITS = dict(command_rate=10_000, command_burst=10_000, new_chats_per_ip=10_000)  # the examples are the load

TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
CHAT_ID = st.from_regex(r"\A[a-zA-Z0-9]{24}\Z") | st.text(string.ascii_letters + "\x00é", min_size=23, max_size=25)
TIMESTAMP = st.builds(
    lambda moment, offset: moment.replace(tzinfo=offset).isoformat() if offset else moment.isoformat(),
    st.datetimes(),
    st.none() | st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))),
) | st.sampled_from(["2024-02-30T00:00:00Z", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+14:00", "now"])
MSG_ID = st.integers(min_value=-(2**70), max_value=2**70) | st.uuids().map(str) | TEXT
FIELDS = {
    "start_chat": {"chat_id": CHAT_ID | JSON},
    "send_msg": {"text": st.text(st.characters(codec="utf-8"), max_size=5000) | JSON},
    "ack_chat": {"msg_id": MSG_ID | JSON},
    "get_history": {"before": TIMESTAMP | JSON},
    "set_email": {"email": st.emails() | st.text(max_size=200).map(lambda t: t + "@x.org") | JSON},
}
COMMAND = st.one_of(
    *[
        st.fixed_dictionaries({"type": st.just(kind)}, optional={**fields, "extra": JSON})
        for kind, fields in FIELDS.items()
    ]
)
FRAME = st.one_of(
    COMMAND.map(json.dumps),
    JSON.map(json.dumps),
    st.fixed_dictionaries({"type": JSON}).map(json.dumps),
    st.text(st.characters(codec="utf-8"), max_size=200),
    st.binary(max_size=200),
)


async def run_property(strategy, check):
    """Run `check` (a coroutine function) for EXAMPLES values of `strategy` on this event loop."""
    loop = asyncio.get_running_loop()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def example(value):
        asyncio.run_coroutine_threadsafe(check(value), loop).result(timeout=30)

    await asyncio.to_thread(example)


def assert_no_internal_errors(caplog):
    broken = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR and "internal" in r.getMessage()]
    assert not broken, broken[0].getMessage()


async def send_frame(visitor, frame):
    if isinstance(frame, bytes):
        await visitor.conn.write_message(frame, binary=True)
    else:
        await visitor.send(frame)


async def replies_until_sentinel(visitor) -> list[dict]:
    """Every event up to the sentinel's error; a closed socket fails in recv()."""
    await visitor.send(SENTINEL)
    events = []
    while True:
        event = await visitor.recv()
        if event == {"type": "error", "code": "invalid_command", "error": "unknown command type: sentinel"}:
            return events
        events.append(event)


def assert_proper(events):
    for event in events:
        assert event["type"] in EVENTS, event
        if event["type"] == "error":
            assert event["code"] in CODES and event["error"], event


@pytest.fixture
async def bystander(start_chip, channel, connect):
    """A chip with generous limits and a bound visitor that must not notice the fuzzing."""
    server = await start_chip(**LIMITS)
    visitor = await connect(server, channel["uuid"])
    visitor.chat_id = (await visitor.start())["chat_id"]
    visitor.server = server
    return visitor


async def assert_still_served(visitor, post_msg, channel, msg_id):
    status, _ = await post_msg(
        channel["uuid"],
        visitor.chat_id,
        {"id": msg_id, "text": "still there?", "origin": "flow"},
        server=visitor.server,
    )
    assert status == 200
    while (event := await visitor.recv())["type"] != "chat_out":
        pass
    assert event["msg_out"]["text"] == "still there?"
    await visitor.send({"type": "ack_chat", "msg_id": msg_id})
    await visitor.send({"type": "get_history", "before": "2100-01-01T00:00:00Z"})
    await visitor.expect("history")


async def test_any_frame_on_a_bound_socket_gets_a_proper_answer(bystander, channel, connect, post_msg, caplog):
    fuzzer = await connect(bystander.server, channel["uuid"])
    await fuzzer.start()

    async def check(frame):
        await send_frame(fuzzer, frame)
        assert_proper(await replies_until_sentinel(fuzzer))

    await run_property(FRAME, check)
    assert_no_internal_errors(caplog)
    await assert_still_served(bystander, post_msg, channel, 900001)
    await fuzzer.send({"type": "get_history", "before": "2100-01-01T00:00:00Z"})
    await fuzzer.expect("history")


async def test_any_command_on_a_fresh_socket_gets_a_proper_answer(bystander, channel, connect, post_msg, caplog):
    async def check(frames):
        visitor = await connect(bystander.server, channel["uuid"])
        for frame in frames:
            await send_frame(visitor, frame)
        assert_proper(await replies_until_sentinel(visitor))
        visitor.close()

    await run_property(st.lists(COMMAND.map(json.dumps), min_size=1, max_size=3), check)
    assert_no_internal_errors(caplog)
    await assert_still_served(bystander, post_msg, channel, 900002)


ORIGIN = st.sampled_from(["flow", "broadcast", "ticket", "chat"])
OPTIONAL_MSG_FIELDS = {
    "uuid": st.uuids().map(str) | JSON,
    "attachments": st.lists(TEXT, max_size=3) | JSON,
    "quick_replies": st.lists(TEXT, max_size=3) | JSON,
    "user_id": st.integers(min_value=-(2**70), max_value=2**70) | JSON,
}
SEND_MSG = st.one_of(
    # nearly right, so that the examples get past validation to the lookups and the outbox
    st.fixed_dictionaries({"id": MSG_ID, "text": TEXT, "origin": ORIGIN}, optional=OPTIONAL_MSG_FIELDS),
    st.fixed_dictionaries(
        {}, optional={"id": MSG_ID | JSON, "text": TEXT | JSON, "origin": ORIGIN | TEXT | JSON, **OPTIONAL_MSG_FIELDS}
    ),
)


async def test_any_send_body_gets_a_200_or_a_4xx_with_a_json_body(bystander, channel, rows, http, post_msg, caplog):
    absent = "a" * 24  # a chat with a contact and no socket, so that accepted messages just queue up
    rows.contact(channel["org_id"], channel["uuid"], absent)
    chat_id = st.sampled_from([absent, "b" * 24]) | CHAT_ID | JSON
    secret = st.sampled_from(["sesame", "wrong", ""]) | JSON
    body = st.one_of(
        st.fixed_dictionaries(
            {  # mostly right, so that messages get queued
                "chat_id": st.sampled_from([absent, absent, "b" * 24]),
                "secret": st.sampled_from(["sesame", "sesame", "x"]),
                "msg": st.fixed_dictionaries(
                    {"id": st.integers(min_value=1, max_value=2**70), "text": TEXT, "origin": ORIGIN},
                    optional=OPTIONAL_MSG_FIELDS,
                ),
            }
        ).map(json.dumps),
        st.fixed_dictionaries({"chat_id": chat_id, "secret": secret, "msg": SEND_MSG}).map(json.dumps),
        st.fixed_dictionaries({}, optional={"chat_id": chat_id, "secret": secret, "msg": SEND_MSG | JSON}).map(
            json.dumps
        ),
        JSON.map(json.dumps),
        st.binary(max_size=200),
    )
    # mostly the right channel, so that the bodies are looked at
    path = st.sampled_from(
        [channel["uuid"]] * 4 + [channel["uuid"].upper(), "not-a-uuid", "8291264a-4581-4d12-96e5-e9fcfa6e68d9"]
    )

    async def check(request):
        where, payload = request
        status, reply = await http(f"{bystander.server.url}/wc/send/{where}/", method="POST", body=payload)
        assert status == 200 or 400 <= status < 500, (status, reply)
        assert set(reply) == ({"status"} if status == 200 else {"error"}), reply

    await run_property(st.tuples(path, body), check)
    assert_no_internal_errors(caplog)
    await assert_still_served(bystander, post_msg, channel, 900003)


@pytest.mark.parametrize(
    "frame, reply",
    [
        (
            '{"type": ["send_msg"]}',
            {"type": "error", "code": "invalid_command", "error": "unknown command type: ['send_msg']"},
        ),
        (
            '{"type": "send_msg", "text": "a\\u0000b"}',
            {"type": "error", "code": "invalid_command", "error": "text: may not contain NUL characters"},
        ),
        (
            '{"type": "get_history", "before": "0001-01-01T00:00:00+05:00"}',
            {"type": "error", "code": "invalid_command", "error": "before: out of range"},
        ),
        ('{"type": "get_history", "before": "2030-01-01T00:00:00+00:00:01.1"}', {"type": "history", "history": []}),
    ],
)
async def test_what_the_properties_found(chip_server, channel, connect, frame, reply):
    """Each of these was an 'internal error' (or, for NUL, a message Courier could never take)."""
    visitor = await connect(chip_server, channel["uuid"])
    await visitor.start()
    await visitor.send(frame)
    assert await visitor.recv() == reply
