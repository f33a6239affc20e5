"""Chip: the webchat server between visitors' chat widgets and RapidPro's Courier.

Wiring only: configuration, then the database, Redis, the Courier client and the services, then
the Tornado Application, signal handlers, start and stop. `python chip.py --help` lists settings;
`python chip.py admin --help` the operator's commands (services/admin/).
"""

import asyncio
import dataclasses
import gc
import logging
import resource
import signal
import sys

import redis.asyncio as aioredis
import uvloop
from redis.asyncio.cluster import RedisCluster
from tornado.web import Application

import handlers
from handlers import metrics as metrics_handlers
from handlers.server import make_server
from models import MODELS, Database, DatabaseUnavailable, SchemaError
from services import config as configuration
from services.backoff import RetryPolicy
from services.chats import Chats
from services.config import Config, safe_url
from services.courier.client import CourierClient
from services.courier.queue import CourierQueue
from services.delivery.keepalive import Keepalive
from services.delivery.outbox import Outbox
from services.delivery.push import Delivery
from services.delivery.sessions import Registry
from services.expiry import Expiry
from services.limits import Limits
from services.lookups import Lookups
from services.looplag import LoopLag
from services.mailer import Mailer
from services.metrics import Metrics
from services.readiness import Readiness, Stopping
from services.shutdown import settle
from services.store.client import connect
from services.store.deadletters import DeadLetters
from services.store.heartbeats import Heartbeat
from services.store.legacy import LegacyKeys
from services.store.lock import Locks
from services.store.pubsub import WakeChannels
from services.store.scripts import Scripts

logger = logging.getLogger("chip")

SHUTDOWN_GRACE = 5.0  # seconds in-flight Courier calls and /wc/send requests get to finish at shutdown


@dataclasses.dataclass
class Services:
    config: Config
    db: Database
    redis: aioredis.Redis | RedisCluster
    scripts: Scripts
    courier_client: CourierClient
    lookups: Lookups
    outbox: Outbox
    registry: Registry
    delivery: Delivery
    courier_queue: CourierQueue
    expiry: Expiry
    legacy: LegacyKeys
    chats: Chats
    limits: Limits
    metrics: Metrics
    readiness: Readiness
    loop_lag: LoopLag
    dead_letters: DeadLetters
    heartbeat: Heartbeat
    keepalive: Keepalive

    async def start(self):
        """Wait until the database and then Redis answer (retrying with backoff, logged), start the
        loops and become ready; Stopping if a stop is asked for while waiting."""
        while True:
            await self.readiness.until_answers("the database", self.db.check, safe_url(self.config.db))
            try:
                # which generation of RapidPro's tables; SchemaError, which no retry mends, if chip
                # cannot serve them
                await self.db.load_schema()
                break
            except DatabaseUnavailable:
                continue  # lost again since it answered: wait for it once more
        await self.readiness.until_answers("valkey/redis", self.redis.ping, safe_url(self.config.valkey))
        await self.heartbeat.start()
        await self.legacy.start()  # what an earlier release queued, before anything is served
        await self.courier_client.start()
        await self.delivery.start()
        self.courier_queue.start()
        self.expiry.start()
        self.dead_letters.start()
        self.loop_lag.start()
        self.keepalive.start()
        self.readiness.set_ready()
        await self.heartbeat.beat()  # ready: said at once, not at the next beat

    async def stop(self):
        """Let Courier calls finish, stop the loops, close Redis and the database (Server.stop has
        closed the sockets and answered the requests in flight before)."""
        self.loop_lag.stop()
        await self.keepalive.stop()
        await self.expiry.stop()
        await self.legacy.stop()
        await self.dead_letters.stop()
        await self.courier_queue.stop(SHUTDOWN_GRACE)
        await self.delivery.stop()
        await self.heartbeat.stop()
        await self.scripts.stop()
        await self.courier_client.close()
        # 2 s, like each of Delivery's steps: every bound hit still ends within the shipped 25 s stop timeouts
        await settle([self.redis.aclose()], 2.0, "closing Redis connections", "the process's exit closes them")
        await self.lookups.stop()
        self.db.close()


async def build(config: Config, retry: RetryPolicy | None = None) -> Services:
    """Build the services, every retry loop on one policy (from the settings unless given). Nothing is
    connected yet: start() waits for the stores."""
    retry = retry or RetryPolicy.from_config(config)
    metrics = Metrics()
    db = Database(config.db, MODELS, pool_size=config.db_pool_size, on_query=metrics.db_queries.inc)
    redis = connect(config.valkey)
    courier_client = CourierClient(config.courier_url, metrics=metrics, timeout=config.courier_timeout)
    lookups = Lookups(db)
    registry = Registry()
    scripts = Scripts(redis, min_replicas=config.valkey_min_replicas)
    wakes = WakeChannels(redis)
    outbox = Outbox(redis, scripts, wakes)
    delivery = Delivery(
        redis,
        outbox,
        registry,
        wakes,
        ack_timeout=config.ack_timeout,
        max_attempts=config.max_attempts,
        max_buffer=config.max_write_buffer,
        stall_timeout=config.ping_timeout,
        metrics=metrics,
        retry=retry,
    )
    locks = Locks(scripts)
    dead_letters = DeadLetters(
        redis,
        scripts,
        ttl=config.dead_letter_ttl,
        most=config.dead_letter_max,
        most_per_channel=config.dead_letter_max_per_channel,
        instance=config.instance_id,
        tally=metrics.dead_letters_kept,
    )
    courier_queue = CourierQueue(
        redis,
        scripts,
        locks,
        courier_client,
        lookups,
        metrics,
        expiry=config.inbound_expiry,
        status_expiry=config.status_expiry,
        retry=retry,
        dead_letters=dead_letters,
    )
    mailer = Mailer(config.smtp_url) if config.smtp_url else None
    expiry = Expiry(
        redis,
        locks,
        outbox,
        courier_queue,
        lookups,
        mailer,
        expiry=config.msg_expiry,
        interval=retry.sweep,
        metrics=metrics,
        dead_letters=dead_letters,
    )
    limits = Limits(config, scripts)
    chats = Chats(db, lookups, outbox, delivery, courier_queue, limits, config.storage_url, metrics)
    readiness = Readiness(retry.stores)
    metrics.watch(registry, redis, db, readiness, courier_queue)
    heartbeat = Heartbeat(
        scripts,
        lambda: {
            "instance": config.instance_id,
            "version": configuration.VERSION,
            "state": readiness.state,
            "ready": readiness.ready,
            "sockets": registry.open_count,
        },
        config.port,
    )
    return Services(
        config,
        db,
        redis,
        scripts,
        courier_client,
        lookups,
        outbox,
        registry,
        delivery,
        courier_queue,
        expiry,
        LegacyKeys(redis, scripts, interval=retry.legacy, enabled=config.legacy_upgrade == "auto"),
        chats,
        limits,
        metrics,
        readiness,
        LoopLag(metrics.loop_lag),
        dead_letters,
        heartbeat,
        Keepalive(config.ping_interval, config.ping_timeout),
    )


def make_app(services: Services, routes=(), **extra) -> Application:
    """The Application; `routes` adds handlers ahead of chip's own (the demo mounts its page this way)."""
    return Application(
        list(routes) + handlers.routes(),
        default_handler_class=handlers.NotFoundHandler,
        config=services.config,
        chats=services.chats,
        lookups=services.lookups,
        delivery=services.delivery,
        registry=services.registry,
        limits=services.limits,
        readiness=services.readiness,
        keepalive=services.keepalive,
        websocket_max_message_size=services.config.max_message_bytes,
        **extra,
    )


def make_metrics_app(services: Services) -> Application:
    """The Prometheus endpoint, served apart from the public port so it is never exposed by accident."""
    return Application(metrics_handlers.routes, metrics=services.metrics)


class Server:
    """chip running: the services, the public HTTP server and (with --metrics-port) the metrics one.
    The one owner of start and stop, so chip.py, the demo and the tests run the same order."""

    def __init__(self, services: Services, routes=()):
        self.services = services
        # no xheaders: they would trust anyone's X-Forwarded-For; Limits.client_ip trusts only
        # --trusted-proxies
        self.http = make_server(make_app(services, routes), services.config)
        self.metrics_http = None
        self.port = services.config.port

    def listen(self, sock=None):
        """Take the public port (the configured address and port, or `sock`, bound already) and the
        metrics port; OSError if one is taken (then abandon())."""
        config = self.services.config
        if sock is None:
            self.http.listen(config.port, config.address)
        else:
            self.port = sock.getsockname()[1]
            self.http.add_sockets([sock])
        self.services.heartbeat.port = self.port
        if config.metrics_port:
            self.metrics_http = make_metrics_app(self.services).listen(config.metrics_port, "localhost")

    async def start(self):
        """Wait for the stores and start the loops (Services.start); listening already, so until then
        /ready and every socket or /wc/send answer 503."""
        await self.services.start()

    async def abandon(self):
        """Give up a server that never started (a port taken, tables chip cannot serve)."""
        self._stop_listening()
        self.services.db.close()
        await self.services.redis.aclose()

    async def stop(self):
        """Stop accepting; close the sockets with 1001; answer the requests already received (a
        /wc/send Courier is waiting on), for up to SHUTDOWN_GRACE; close the connections, so that no
        request still runs when the loops stop and Redis, the database and the Courier client close."""
        logger.info("shutting down: %d open socket(s)", self.services.registry.open_count)
        self.services.readiness.stop()
        self._stop_listening()
        self.services.registry.close_all(1001, "server shutting down")
        unanswered = await self.services.readiness.drain(SHUTDOWN_GRACE)
        if unanswered:
            logger.warning("shutting down with %d request(s) unanswered after %.0f s", unanswered, SHUTDOWN_GRACE)
        await self.http.close_all_connections()
        if self.metrics_http is not None:
            await self.metrics_http.close_all_connections()
        await self.services.stop()

    def _stop_listening(self):
        self.http.stop()
        if self.metrics_http is not None:
            self.metrics_http.stop()


def tune_collector():
    """Freeze what start-up made (modules, the app, the services) so that collections never walk it
    again, and collect the young generation every 10,000 allocations instead of every 700: with
    CPython's defaults, collections take a large share of chip's CPU under load (BENCHMARKS.md,
    "What was tried", "The garbage collector")."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def reload(config: Config, argv):
    """SIGHUP: read the settings again (flags, environment, --env-file) and apply --log-level, the one
    setting that changes without touching a socket; the others changed are logged as needing a restart."""
    try:
        fresh = configuration.parse(argv)
    except configuration.ConfigError as e:
        logger.error("reload: settings not changed: %s", e)
        return
    configuration.set_log_level(fresh.log_level)
    later = [
        f.name
        for f in dataclasses.fields(Config)
        if f.name != "log_level" and getattr(fresh, f.name) != getattr(config, f.name)
    ]
    logger.warning(
        "reload: log level %s%s", fresh.log_level, f"; these take a restart: {', '.join(later)}" if later else ""
    )


def raise_file_limit():
    """Raise the soft limit on open files to the hard one, as Go does for the server chip replaces:
    a socket per visitor needs far more than the usual soft 1024, and supervisord's minfds cannot
    raise it where the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:  # an unlimited hard limit is more than the kernel allows
            logger.warning("open files stay limited to %d: %s", soft, e)


async def serve(config: Config, argv=None):
    server = Server(await build(config))
    try:
        server.listen()
    except OSError as e:
        await server.abandon()
        configuration.fail(
            f"cannot listen on {config.address}:{config.port} (metrics {config.metrics_port}): {e.strerror}"
        )
    readiness = server.services.readiness
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, readiness.stop)
    loop.add_signal_handler(signal.SIGHUP, reload, config, argv)
    try:
        await server.start()
    except Stopping:
        pass
    except SchemaError as e:
        await server.abandon()
        configuration.fail(str(e))
    else:
        tune_collector()
        logger.info(
            "chip ready, listening on %s:%d instance=%s courier=%s open files<=%d",
            config.address,
            config.port,
            config.instance_id,
            safe_url(config.courier_url),
            resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        )
        await readiness.stopped()
    await server.stop()
    logger.info("stopped")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["admin"]:
        from services import admin  # the operator's commands (services/admin/), not the server's

        sys.exit(admin.main(argv[1:]))
    config = configuration.load(argv)
    configuration.setup_logging(config)
    raise_file_limit()
    if config.sentry_dsn:
        import sentry_sdk

        sentry_sdk.init(dsn=config.sentry_dsn)
    # uvloop: the same asyncio loop Tornado runs on, with less overhead per socket operation
    uvloop.run(serve(config, argv))


if __name__ == "__main__":
    main()
