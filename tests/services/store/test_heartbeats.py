"""Heartbeats (services/store/heartbeats.py): every running chip process says in Redis who it is and
how it is, as soon as Redis answers and every few seconds after; one that stopped says so; one
silent for a minute is gone."""

import json
import os
import socket
import time

from services.config import VERSION
from services.store import keys
from services.store.heartbeats import processes


async def test_a_running_chip_beats_and_says_how_it_is(start_chip, bound, channel, store):
    server = await start_chip(instance_id="beat-a")
    [seen] = await processes(server.services.redis)
    assert seen["process"] == f"{socket.gethostname()}:{server.port}"
    assert (seen["instance"], seen["version"], seen["pid"], seen["state"], seen["ready"], seen["sockets"]) == (
        "beat-a",
        VERSION,
        os.getpid(),
        "ready",
        True,
        0,
    )
    assert time.time() - seen["seen"] < 5 and seen["started"] <= seen["seen"]
    await bound(server, channel)
    await server.services.heartbeat.beat()  # as the next beat would, within 10 s
    [seen] = await processes(server.services.redis)
    assert seen["sockets"] == 1
    await server.stop()
    [seen] = await processes(server.services.redis)
    assert (seen["state"], seen["ready"]) == ("stopping", False)
    assert 0 < store.pttl(keys.heartbeats()) <= 60_000, "the heartbeats outlive the last beat by a minute"


async def test_a_process_silent_for_a_minute_is_gone(start_chip, store):
    store.hset(keys.heartbeats(), "old-host:8070", json.dumps({"process": "old-host:8070", "ready": True}))
    store.zadd(keys.heartbeats_seen(), {"old-host:8070": time.time() - 61})
    server = await start_chip()
    assert [seen["process"] for seen in await processes(server.services.redis)] == [server.services.heartbeat.process]
    assert not store.hexists(keys.heartbeats(), "old-host:8070"), "the next beat of any process clears it"
