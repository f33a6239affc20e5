"""Fixtures: a real PostgreSQL database with RapidPro's tables, a real Redis, the Courier double,
chip itself (the same Application chip.py builds) and real WebSocket visitors.

CHIP_TEST_DB names a PostgreSQL server (a database on it is created and dropped per run);
CHIP_TEST_VALKEY names a Redis database that the tests flush. Defaults: the local servers.
"""

import asyncio
import json
import os
import pathlib
import secrets
import subprocess
import time

import pytest
import redis
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.websocket import websocket_connect

import chip
from services.config import Config
from tests.courier_double import CourierDouble
from tests.rows import Rows, create_database, drop_database

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEST_DB = os.environ.get("CHIP_TEST_DB", "postgres://postgres@localhost:5432/postgres")
TEST_VALKEY = os.environ.get("CHIP_TEST_VALKEY", "redis://localhost:6379/15")


@pytest.fixture(scope="session")
def pg_url():
    """A fresh database with RapidPro's tables, dropped at the end of the run."""
    url = create_database(TEST_DB, f"chip_test_{os.getpid()}_{secrets.token_hex(3)}")
    yield url
    drop_database(TEST_DB, url)


@pytest.fixture
def rows(pg_url):
    rows = Rows(pg_url)
    yield rows
    rows.clear()
    rows.close()


@pytest.fixture
def redis_url():
    client = redis.Redis.from_url(TEST_VALKEY)
    client.flushdb()
    yield TEST_VALKEY
    client.flushdb()
    client.close()


class SpareRedis:
    """A redis-server of the test's own on a free loopback port, to stop and start at will."""

    def __init__(self, directory):
        sock, self.port = bind_unused_port()
        sock.close()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def spare_redis(tmp_path):
    server = SpareRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def channel(rows):
    """An org with an active CHP channel whose secret is 'sesame'."""
    org_id = rows.org()
    return {"org_id": org_id, "uuid": rows.channel(org_id)}


@pytest.fixture
async def courier(pg_url):
    double = await CourierDouble(pg_url).start()
    yield double
    await double.stop()


class ChipServer:
    def __init__(self, services, server, port):
        self.services = services
        self.server = server
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"

    async def stop(self):
        self.server.stop()
        await self.services.stop()
        await self.server.close_all_connections()


@pytest.fixture
async def start_chip(pg_url, redis_url, courier):
    """start_chip(**config) -> a running chip on a free loopback port, stopped at teardown."""
    started = []

    async def start(**overrides) -> ChipServer:
        values = dict(db=pg_url, valkey=redis_url, courier_url=courier.url, storage_url="https://cdn.test/media",
                      instance_id=f"test{len(started)}", address="127.0.0.1")
        values.update(overrides)
        services = await chip.build(Config(**values))
        sock, port = bind_unused_port()
        server = HTTPServer(chip.make_app(services))
        server.add_sockets([sock])
        await services.start()
        started.append(ChipServer(services, server, port))
        return started[-1]

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def chip_server(start_chip):
    return await start_chip()


class Visitor:
    """A chat widget: a real WebSocket client speaking JSON frames."""

    def __init__(self, conn):
        self.conn = conn

    async def send(self, command):
        await self.conn.write_message(command if isinstance(command, str) else json.dumps(command))

    async def recv(self, timeout: float = 5.0) -> dict:
        frame = await asyncio.wait_for(self.conn.read_message(), timeout)
        assert frame is not None, f"socket closed (code {self.conn.close_code})"
        return json.loads(frame)

    async def expect(self, kind: str, timeout: float = 5.0) -> dict:
        event = await self.recv(timeout)
        assert event["type"] == kind, event
        return event

    async def silent(self, seconds: float = 0.3):
        """Assert that nothing arrives for a while."""
        try:
            frame = await asyncio.wait_for(self.conn.read_message(), seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {frame}")

    async def start(self, chat_id=None) -> dict:
        await self.send({"type": "start_chat", **({"chat_id": chat_id} if chat_id else {})})
        return await self.recv()

    def close(self):
        self.conn.close()


@pytest.fixture
async def connect():
    """connect(server, channel_uuid) -> a Visitor; every socket is closed at teardown."""
    opened = []

    async def open_socket(server, channel_uuid, path="/wc/connect/{}/") -> Visitor:
        conn = await websocket_connect(server.ws_url + path.format(channel_uuid))
        opened.append(Visitor(conn))
        return opened[-1]

    yield open_socket
    for visitor in opened:
        visitor.close()


@pytest.fixture
def http():
    """fetch(url, **kw) -> (status, parsed JSON body), without raising on 4xx/5xx."""
    client = AsyncHTTPClient()

    async def fetch(url, **kwargs):
        try:
            response = await client.fetch(url, **kwargs)
        except HTTPClientError as e:
            response = e.response
        body = response.body
        return response.code, (json.loads(body) if body else None)

    return fetch


@pytest.fixture
def post_msg(http, chip_server):
    """post_msg(channel_uuid, chat_id, msg, secret='sesame', server=chip_server) -> (status, body)."""
    async def post(channel_uuid, chat_id, msg, secret="sesame", server=None):
        body = {"chat_id": chat_id, "secret": secret, "msg": msg}
        return await http(f"{(server or chip_server).url}/wc/send/{channel_uuid}/", method="POST",
                          body=json.dumps(body))
    return post
