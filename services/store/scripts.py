"""Lua scripts, each a file in services/store/lua/, run in batches: every script call made during
one turn of the event loop goes to Redis in one pipeline (one write, one read for all of them)
instead of a round trip each.

A script's header names its keys and arguments (`-- KEYS: a b`, `-- ARGV: c d`) and what it
returns; `-- include: name` puts lua/lib/<name>.lua before it, once. The loader binds each name to
a local, so the script and its Python callers use the same names and nobody counts positions:
`await script(a=..., b=..., c=..., d=...)`.

Under load, one turn of the loop handles many requests and frames, and each wants a script (queue,
ack, Courier's lock); redis-py would send each on its own. Each call is still its own atomic
script, and the calls of one turn run in the order they were made (services/store/batching.py).
"""

import asyncio
import hashlib
import logging
import pathlib
import re

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from services.store.batching import TurnBatch
from services.store.replication import REPLICA_WAIT, replicated

logger = logging.getLogger(__name__)

LUA = pathlib.Path(__file__).parent / "lua"
_HEADER = re.compile(r"^-- (KEYS|ARGV|include): *(.*)$", re.M)


class LuaFile:
    """A script file as Redis runs it: its includes, then locals named after its keys and arguments,
    then its body."""

    def __init__(self, name: str, folder: pathlib.Path = LUA):
        self.name = name
        text = (folder / f"{name}.lua").read_text()
        header = {kind: value.split() for kind, value in _HEADER.findall(text)}
        self.keys: tuple[str, ...] = tuple(header.get("KEYS", ()))
        self.args: tuple[str, ...] = tuple(header.get("ARGV", ()))
        parts = [(folder / "lib" / f"{lib}.lua").read_text() for lib in _includes(header.get("include", []), folder)]
        parts += [_bind(self.keys, "KEYS"), _bind(self.args, "ARGV"), text]
        self.source = "\n".join(part for part in parts if part)


def _includes(names: list, folder: pathlib.Path, seen: list = None) -> list:
    """The library files to put before a script, each after those it includes itself, and once."""
    seen = [] if seen is None else seen
    for name in names:
        if name not in seen:
            nested = _HEADER.findall((folder / "lib" / f"{name}.lua").read_text())
            _includes([n for kind, value in nested if kind == "include" for n in value.split()], folder, seen)
            seen.append(name)
    return seen


def _bind(names: tuple, table: str) -> str:
    if not names:
        return ""
    return f"local {', '.join(names)} = {', '.join(f'{table}[{i}]' for i in range(1, len(names) + 1))}"


class BatchedScript:
    """A registered script: `await script(name=value, ...)` with the names its file declares, or
    `await script(keys=[...], args=[...])` for one registered from source."""

    __slots__ = ("scripts", "source", "sha", "key_names", "arg_names")

    def __init__(self, scripts: "Scripts", source: str, key_names: tuple = (), arg_names: tuple = ()):
        self.scripts = scripts
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self.key_names = key_names
        self.arg_names = arg_names

    def __call__(self, keys=(), args=(), **named) -> asyncio.Future:
        if named:
            keys, args = self.bind(named)
        return self.scripts.call(self, keys, args)

    async def replicated(self, **named):
        """The call, answered only once --valkey-min-replicas replicas have its writes."""
        return await self.scripts.call_replicated(self, *self.bind(named))

    def bind(self, named: dict) -> tuple[list, list]:
        """The keys and arguments in the order the script's header names them; KeyError names one
        missing, TypeError one the header does not know."""
        if len(named) != len(self.key_names) + len(self.arg_names):
            unknown = set(named) - set(self.key_names) - set(self.arg_names)
            if unknown:
                raise TypeError(f"the script takes no {', '.join(sorted(unknown))}")
        return [named[n] for n in self.key_names], [named[n] for n in self.arg_names]


def _evalsha(pipe, script: BatchedScript, keys, args):
    # by name: redis-py's cluster pipeline refuses its evalsha() method, yet sends EVALSHA to the
    # node of its keys like any other command
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)


class Scripts:
    def __init__(self, redis: aioredis.Redis, min_replicas: int = 0):
        self.redis = redis
        self.min_replicas = min_replicas
        self._registered: list[BatchedScript] = []
        self._batch = TurnBatch(self._execute)

    def register(self, source: str) -> BatchedScript:
        script = BatchedScript(self, source)
        self._registered.append(script)
        return script

    def load(self, name: str) -> BatchedScript:
        """The script in lua/<name>.lua, called by the names its header gives."""
        lua = LuaFile(name)
        script = BatchedScript(self, lua.source, lua.keys, lua.args)
        self._registered.append(script)
        return script

    def call(self, script: BatchedScript, keys, args) -> asyncio.Future:
        return self._batch.add((script, keys, args))

    async def _execute(self, calls: list) -> list:
        results = await self._pipeline(calls)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:
            # Redis restarted or flushed its scripts: load them all, then run what did not run. The
            # calls that did run keep their answers even if this fails: they must not be repeated.
            try:
                await self._load_all()
                again = await self._pipeline([calls[i] for i in missing])
            except (RedisError, OSError) as e:
                again = [e] * len(missing)
            for i, result in zip(missing, again):
                results[i] = result
        return results

    async def call_replicated(self, script: BatchedScript, keys, args):
        """A call of its own (not batched), followed on its connection by a WAIT for min_replicas
        replicas (services/store/replication.py): Unavailable if they do not confirm its writes in
        time, though the writes are made (the callers' writes may be made twice). Batched as usual
        when no replica is asked for."""
        if not self.min_replicas:
            return await self.call(script, keys, args)
        for first in (True, False):
            pipe = self.redis.pipeline(transaction=False)
            _evalsha(pipe, script, keys, args)
            [result] = await replicated(self.redis, pipe, keys[0], self.min_replicas, REPLICA_WAIT)
            if first and isinstance(result, NoScriptError):
                await self._load_all()
                continue
            if isinstance(result, Exception):
                raise result
            return result

    async def _load_all(self):
        # Redis restarted, failed over or flushed its scripts
        logger.info("loading %d scripts into redis", len(self._registered))
        for script in self._registered:
            await self.redis.script_load(script.source)

    async def _pipeline(self, calls: list) -> list:
        pipe = self.redis.pipeline(transaction=False)
        for script, keys, args in calls:
            _evalsha(pipe, script, keys, args)
        return await pipe.execute(raise_on_error=False)

    async def stop(self):
        """Wait for the batches already sent (their callers are waiting for the answers)."""
        await self._batch.wait(2)
