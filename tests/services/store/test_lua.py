"""The Lua scripts in services/store/lua: each loads, its header names what it takes, and every key
it touches carries one hash tag, so that it runs on a Redis Cluster (one slot per call).

The keys a script touches are read from Redis itself: MONITOR shows each command a script runs
("lua" clients), one script's commands together, since a script runs alone."""

import asyncio
import hashlib
import re
import secrets
import threading

import pytest
import redis

from services.store.scripts import _HEADER as HEADER
from services.store.scripts import LUA, LuaFile

NAMES = sorted(path.stem for path in LUA.glob("*.lua"))
# the earlier layout's keys had no tag: that script moves them on a single server only, never a cluster
UNTAGGED = {"legacy_move_chat"}
# commands whose every argument is a key; any other command the scripts use takes its key first
ALL_KEYS = {"DEL", "EXISTS"}
TAG = re.compile(r"\{([^}]*)\}")


@pytest.mark.parametrize("name", NAMES)
def test_every_script_loads_and_names_what_it_takes(store, name):
    lua = LuaFile(name)
    assert store.script_load(lua.source) == hashlib.sha1(lua.source.encode()).hexdigest()
    text = (LUA / f"{name}.lua").read_text()
    assert re.search(r"^-- Returns: ", text, re.M), "the header says what the script returns"
    body = HEADER.sub("", text)
    assert not re.search(r"\b(KEYS|ARGV)\[", body), "the body uses the header's names, not positions"
    for name_ in lua.keys + lua.args:
        assert re.search(rf"\b{name_}\b", body), f"{name_} is declared but never used"


def test_every_library_file_is_included_somewhere():
    included = {
        lib
        for path in LUA.rglob("*.lua")
        for kind, value in HEADER.findall(path.read_text())
        if kind == "include"
        for lib in value.split()
    }
    assert included == {path.stem for path in (LUA / "lib").glob("*.lua")}


class Monitor:
    """MONITOR on the test Redis in a thread: the commands scripts ran, a list per script call."""

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url)
        self.calls: list[tuple[str, list[str]]] = []  # (sha, commands)
        self.marker = f"monitor-end-{secrets.token_hex(4)}"
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._ready = threading.Event()

    def __enter__(self):
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc):
        self.client.echo(self.marker)
        self._thread.join(10)
        self.client.close()

    def _read(self):
        with self.client.monitor() as monitor:
            self._ready.set()
            while True:
                command = monitor.next_command()
                text = command["command"]
                if self.marker in text:
                    return
                if command["client_type"] == "lua" and self.calls:
                    self.calls[-1][1].append(text)
                elif text.startswith(("EVALSHA ", "EVAL ")):
                    self.calls.append((text.split()[1], []))


def touched(commands: list[str]) -> set[str]:
    keys = set()
    for command in commands:
        name, *args = command.split()
        if args:
            keys.update(args if name.upper() in ALL_KEYS else args[:1])
    return keys


async def test_every_key_a_script_touches_carries_the_same_hash_tag(
    redis_url, start_chip, bound, channel, courier, post_msg
):
    shas = {hashlib.sha1(LuaFile(name).source.encode()).hexdigest(): name for name in NAMES}
    with Monitor(redis_url) as monitor:
        server = await start_chip(msg_expiry=1.0)
        visitor = await bound(server, channel)
        await visitor.send({"type": "send_msg", "text": "hello"})
        for i in (1, 2):
            await post_msg(channel["uuid"], visitor.chat_id, {"id": i, "text": f"m{i}", "origin": "flow"})
            await visitor.expect("chat_out")
        await visitor.send({"type": "ack_chat", "msg_id": 1})
        await courier.wait_for(lambda: courier.of_type("msg_status", visitor.chat_id))
        visitor.close()
        await asyncio.sleep(1.1)
        await server.services.expiry.sweep()  # message 2 waited past --msg-expiry: given up, reported failed
        await courier.wait_for(lambda: len(courier.of_type("msg_status", visitor.chat_id)) == 2)
        # its dead letter, as an operator mends it (chip.py admin dead-letters), and the trim of old letters
        dead = server.services.dead_letters
        [letter] = await dead.all()
        assert await dead.replay(letter, letter["frame"], server.services.delivery.wakes.publish) == 1
        assert await dead.drop(letter["id"]) is False
        await dead.trim()
    ran = {shas[sha] for sha, _ in monitor.calls if sha in shas}
    assert ran == set(NAMES) - UNTAGGED, "the scenario runs every script"
    for sha, commands in monitor.calls:
        if shas.get(sha) in UNTAGGED:
            continue
        keys = touched(commands)
        tags = {match.group(1) if (match := TAG.search(key)) else None for key in keys}
        assert len(keys) <= 1 or (len(tags) == 1 and None not in tags), (shas.get(sha), sorted(keys))
