"""Fixtures: a real PostgreSQL database with RapidPro's tables, a real Redis, the Courier double,
chip itself (the same Application chip.py builds) and real WebSocket visitors.

Which servers: CHIP_TEST_DB names a PostgreSQL server (a database on it is created and dropped per
run) and CHIP_TEST_VALKEY a Redis database that the tests flush. Unset, the local servers are used
when they answer on their default ports, and otherwise the embedded ones `make demo` uses (started
for the run in a temporary directory, stopped at its end). CHIP_TEST_EMBEDDED=1 forces those.
The Redis Cluster and the Sentinel topology (tests/topologies) are started once per run, by the
first test that asks for the `cluster` or `sentinel` fixture.
"""

import contextlib
import json
import os
import pathlib
import secrets
import shutil
import tempfile
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import redis
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.testing import bind_unused_port
from tornado.websocket import websocket_connect

import chip
from demo.embedded import EmbeddedPostgres, EmbeddedRedis, reachable
from demo.rows import Rows, create_database, drop_database
from models import MODELS, Database
from models.schema import NEWEST
from services.backoff import RetryPolicy
from services.config import Config
from tests.courier_double import CourierDouble
from tests.servers import ChipProcess, SparePostgres
from tests.topologies import Cluster, Sentinel, unsupported
from tests.visitor import Visitor

LOCAL_DB = ("postgres://postgres@localhost:5432/postgres", "localhost", 5432)
LOCAL_VALKEY = ("redis://localhost:6379/15", "localhost", 6379)


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def configured(variable: str, local: tuple):
    """The server URL the tests use: the variable's, else the local server's if it answers; None
    means neither, so the embedded server is started."""
    if os.environ.get("CHIP_TEST_EMBEDDED") == "1":
        return None
    if os.environ.get(variable):
        return os.environ[variable]
    url, host, port = local
    return url if reachable(host, port) else None


def pytest_report_header(config):
    db, valkey = configured("CHIP_TEST_DB", LOCAL_DB), configured("CHIP_TEST_VALKEY", LOCAL_VALKEY)
    return f"chip test servers: postgresql={db or 'embedded'} redis={valkey or 'embedded'}"


@pytest.fixture(scope="session")
def embedded_dir():
    """Where embedded servers keep their data for the run. Not pytest's tmp_path: another pytest
    run on the machine may prune that while this one still uses it."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="chip-test-servers-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _server(variable: str, local: tuple, embedded):
    """Yield the configured or local server's URL, or start the embedded one for the run."""
    url = configured(variable, local)
    if url:
        yield url
        return
    yield embedded.start()
    embedded.stop()


@pytest.fixture(scope="session")
def test_db(embedded_dir):
    """The PostgreSQL server's URL (see the module's docstring for which one)."""
    yield from _server("CHIP_TEST_DB", LOCAL_DB, EmbeddedPostgres(embedded_dir / "pg"))


@pytest.fixture(scope="session")
def test_valkey(embedded_dir):
    """The Redis database's URL (see the module's docstring for which one)."""
    yield from _server("CHIP_TEST_VALKEY", LOCAL_VALKEY, EmbeddedRedis(embedded_dir / "redis"))


@pytest.fixture(scope="session")
def generation(request):
    """Which RapidPro generation's tables the test runs on (models/schema.py GENERATIONS): the newest,
    unless a module runs on both: `pytestmark = pytest.mark.parametrize("generation", GENERATIONS,
    indirect=True)`. Session-scoped, so pytest runs a module's tests one generation after the other."""
    return getattr(request, "param", NEWEST)


@pytest.fixture(scope="session")
def rapidpro_databases(test_db):
    """databases(generation) -> a fresh database with RapidPro's tables as that generation has them,
    made once per run and dropped at its end."""
    made = {}

    def database(generation: str) -> str:
        if generation not in made:
            name = f"chip_test_{os.getpid()}_{generation.replace('.', '_')}_{secrets.token_hex(3)}"
            made[generation] = create_database(test_db, name, generation)
        return made[generation]

    yield database
    for url in made.values():
        drop_database(test_db, url)


@pytest.fixture
def pg_url(rapidpro_databases, generation):
    """The database of the test's generation."""
    return rapidpro_databases(generation)


@pytest.fixture
def database_down(pg_url):
    """`with database_down():` chip's database connections are cut and new ones refused inside the
    block (the Rows connection, named 'keep', is spared)."""

    @contextlib.contextmanager
    def outage():
        admin = psycopg2.connect(_with_db(pg_url, "postgres"))
        admin.autocommit = True
        name = urlsplit(pg_url).path.lstrip("/")
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
                " AND application_name <> 'keep'",
                (name,),
            )
        try:
            yield
        finally:
            with admin.cursor() as cur:
                cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            admin.close()

    return outage


@pytest.fixture
async def database(pg_url):
    """chip's Database (peewee on a pool of two worker threads) on the tests' database."""
    db = Database(pg_url, MODELS, pool_size=2)
    await db.load_schema()
    yield db
    db.close()


@pytest.fixture
def rows(pg_url):
    rows = Rows(pg_url)
    yield rows
    rows.clear()
    rows.close()


@pytest.fixture
def redis_url(test_valkey):
    client = redis.Redis.from_url(test_valkey)
    client.flushdb()
    yield test_valkey
    client.flushdb()
    client.close()


@pytest.fixture
def spare_postgres():
    server = SparePostgres()
    server.start()
    server.load_schema()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def store(redis_url):
    """A plain Redis client on the tests' database, to look at what chip keeps there."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def spare_redis(tmp_path):
    """A redis-server of the test's own on a free loopback port, to stop and start at will."""
    server = EmbeddedRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def _topology(kind):
    """Start a topology for the run, or skip when this machine's redis-server cannot run it."""
    reason = unsupported()
    if reason:
        pytest.skip(reason)
    with kind() as topology:
        yield topology


@pytest.fixture(scope="session")
def cluster_servers():
    """The run's Redis Cluster (tests/topologies): started once, it takes some seconds."""
    yield from _topology(Cluster)


@pytest.fixture
def cluster(cluster_servers):
    """The run's Redis Cluster, healed (killed nodes back, as replicas) and emptied for each test.
    `cluster.sharded_pubsub` says whether the server has SPUBLISH/SSUBSCRIBE (Redis >= 7)."""
    cluster_servers.heal()
    cluster_servers.flush()
    return cluster_servers


@pytest.fixture(scope="session")
def sentinel_servers():
    """The run's primary, replicas and Sentinels (tests/topologies): started once, it takes some seconds."""
    yield from _topology(Sentinel)


@pytest.fixture
def sentinel(sentinel_servers):
    """The run's Sentinel topology, healed (killed servers back, as replicas) and emptied for each test."""
    sentinel_servers.heal()
    sentinel_servers.flush()
    return sentinel_servers


@pytest.fixture
def spare_replica(spare_redis, tmp_path):
    """A second redis-server of the test's own, a replica of spare_redis, in sync when the test starts."""
    server = EmbeddedRedis(tmp_path / "replica")
    server.start()
    client = redis.Redis(port=server.port)
    try:
        client.replicaof("127.0.0.1", spare_redis.port)
        for _ in range(200):
            if client.info("replication")["master_link_status"] == "up":
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the replica did not reach its master")
        yield server
    finally:
        client.close()
        server.stop()


@pytest.fixture
def channel(rows):
    """An org with an active CHP channel whose secret is 'sesame'."""
    org_id = rows.org()
    return {"org_id": org_id, "uuid": rows.channel(org_id)}


@pytest.fixture
async def courier(pg_url, rows):  # rows: its tables are emptied only once Courier is stopped
    double = await CourierDouble(pg_url).start()
    yield double
    await double.stop()


class ChipServer:
    """A running chip.Server on loopback, with the URLs a test talks to."""

    def __init__(self, running: chip.Server):
        self.services = running.services
        self.server = running.http
        self.port = running.port
        self.url = f"http://127.0.0.1:{running.port}"
        self.ws_url = f"ws://127.0.0.1:{running.port}"
        self.stop = running.stop


def chip_settings(pg_url, redis_url, courier, **overrides) -> Config:
    """The settings of a chip on the tests' database, Redis and Courier double, with `overrides`."""
    values = dict(
        db=pg_url, valkey=redis_url, courier_url=courier.url, storage_url="https://cdn.test/media", address="127.0.0.1"
    )
    return Config(**{**values, **overrides})


@pytest.fixture
async def services(pg_url, redis_url, courier, rows):  # rows: emptied only once chip is stopped
    """chip's services as chip.build wires them, started, without an HTTP server: for unit tests of
    one service (Chats, Expiry) that needs the others; stopped at teardown."""
    built = await chip.build(chip_settings(pg_url, redis_url, courier))
    await built.start()
    yield built
    await built.stop()


@pytest.fixture
async def start_chip(pg_url, redis_url, courier, rows):  # rows: emptied only once chip is stopped
    """start_chip(retry=None, **config) -> a running chip on a free loopback port, stopped at teardown;
    `retry` changes fields of the RetryPolicy the settings make (shorter waits)."""
    started = []

    async def start(retry=None, **overrides) -> ChipServer:
        config = chip_settings(pg_url, redis_url, courier, **{"instance_id": f"test{len(started)}", **overrides})
        running = chip.Server(await chip.build(config, RetryPolicy.from_config(config, **(retry or {}))))
        running.listen(bind_unused_port()[0])
        await running.start()
        started.append(ChipServer(running))
        return started[-1]

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def chip_server(start_chip):
    return await start_chip()


@pytest.fixture
async def connect():
    """connect(server, channel_uuid, headers=None) -> a Visitor; every socket is closed at teardown."""
    opened = []

    async def open_socket(server, channel_uuid, path="/wc/connect/{}/", headers=None) -> Visitor:
        conn = await websocket_connect(HTTPRequest(server.ws_url + path.format(channel_uuid), headers=headers))
        opened.append(Visitor(conn))
        return opened[-1]

    yield open_socket
    for visitor in opened:
        visitor.close()


@pytest.fixture
def bound(connect):
    """bound(server, channel, chat_id=None) -> a Visitor that has started (or resumed) a chat,
    with its chat_id."""

    async def start(server, channel, chat_id=None) -> Visitor:
        visitor = await connect(server, channel["uuid"])
        visitor.chat_id = (await visitor.start(chat_id))["chat_id"]
        return visitor

    return start


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
def post_msg(http, chip_server, courier):
    """post_msg(channel_uuid, chat_id, msg, secret='sesame', server=chip_server) -> (status, body), as
    Courier sends a message (the double knows it sent it)."""

    async def post(channel_uuid, chat_id, msg, secret="sesame", server=None):
        body = {"chat_id": chat_id, "secret": secret, "msg": msg}
        if isinstance(msg, dict) and isinstance(chat_id, str):
            courier.sent(chat_id, msg)
        return await http(
            f"{(server or chip_server).url}/wc/send/{channel_uuid}/", method="POST", body=json.dumps(body)
        )

    return post


@pytest.fixture
def chip_process(pg_url, redis_url, courier):
    """chip_process(*flags) -> a ChipProcess on the test database, Redis and Courier double; killed at teardown."""
    started = []

    def start(*args, **env) -> ChipProcess:
        base = ["--db", pg_url, "--valkey", redis_url, "--courier-url", courier.url]
        started.append(ChipProcess(*base, *args, env=env))
        return started[-1]

    yield start
    for process in started:
        process.stop()


FAULT_TALLY = pytest.StashKey[list]()


@pytest.fixture
def tally(request):
    """tally(fault, sent=, delivered=, duplicates=): one row of the fault report printed after the run."""
    rows = request.config.stash.setdefault(FAULT_TALLY, [])

    def record(fault: str, sent: int, delivered: int, duplicates: int = 0):
        rows.append((fault, sent, sent - delivered, duplicates))

    return record


def pytest_terminal_summary(terminalreporter, config):
    rows = config.stash.get(FAULT_TALLY, [])
    if rows:
        terminalreporter.write_sep("-", "fault report")
        terminalreporter.write_line("| fault | messages | lost | duplicates |")
        terminalreporter.write_line("|---|---|---|---|")
        for fault, sent, lost, duplicates in rows:
            terminalreporter.write_line(f"| {fault} | {sent} | {lost} | {duplicates} |")


@pytest.fixture
async def browser():
    """Debian's Chromium under Playwright (tests/browser.py); every page it opened is closed at teardown."""
    from tests.browser import Browser

    running = await Browser().start()
    yield running
    await running.close()
    assert not running.problems, running.problems


@pytest.fixture
async def site(pg_url, redis_url, courier, rows):  # rows: emptied only once chip is stopped
    """A customer's site on loopback embedding chip's widget, and that chip (tests/browser.py)."""
    from tests.browser import Site

    running = await Site(dict(db=pg_url, valkey=redis_url, courier_url=courier.url)).start()
    yield running
    await running.stop()
