"""Chip: the webchat server between visitors' chat widgets and RapidPro's Courier.

Wiring only: configuration, then the database, Redis, the Courier client and the services, then
the Tornado Application, signal handlers, start and stop. `python chip.py --help` lists settings.
"""

import asyncio
import dataclasses
import gc
import logging
import signal
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import uvloop
from redis.exceptions import RedisError
from tornado.web import Application

import handlers
from handlers import metrics as metrics_handlers
from models import MODELS, Database, SchemaError
from services import config as settings
from services import valkey
from services.chats import Chats
from services.config import Config
from services.courier import CourierClient
from services.courier_queue import CourierQueue
from services.delivery import Delivery
from services.errors import Unavailable
from services.expiry import Expiry
from services.limits import Limits
from services.lookups import Lookups
from services.mailer import Mailer
from services.metrics import Metrics
from services.outbox import Outbox
from services.registry import Registry
from services.scripts import Scripts

logger = logging.getLogger("chip")

SHUTDOWN_GRACE = 5.0  # seconds in-flight Courier calls get to finish at shutdown


@dataclasses.dataclass
class Services:
    config: Config
    db: Database
    redis: aioredis.Redis
    scripts: Scripts
    courier: CourierClient
    lookups: Lookups
    outbox: Outbox
    registry: Registry
    delivery: Delivery
    courier_queue: CourierQueue
    expiry: Expiry
    chats: Chats
    limits: Limits
    metrics: Metrics

    async def start(self):
        await self.courier.start()
        await self.delivery.start()
        self.courier_queue.start()
        self.expiry.start()

    async def stop(self):
        """Close sockets (1001), let Courier calls finish, stop the loops, close Redis and the database."""
        self.registry.close_all(1001, "server shutting down")
        self.expiry.stop()
        await self.courier_queue.stop(SHUTDOWN_GRACE)
        await self.delivery.stop()
        await self.scripts.stop()
        await self.courier.close()
        await self.redis.aclose()
        self.db.close()


async def build(config: Config) -> Services:
    """Connect to the database and Redis (Unavailable if either does not answer) and build the services."""
    db = Database(config.db, MODELS, pool_size=config.db_pool_size)
    redis = valkey.client(config.redis_url)
    try:
        await db.check()
    except Unavailable:
        db.close()
        raise Unavailable(f"cannot reach the database at {_safe(config.db)}") from None
    try:
        await db.load_schema()  # which generation of RapidPro's tables; SchemaError if chip cannot serve it
    except SchemaError as e:
        db.close()
        await redis.aclose()
        settings.fail(str(e))
    try:
        await redis.ping()
    except (RedisError, OSError):
        db.close()
        await redis.aclose()
        raise Unavailable(f"cannot reach valkey/redis at {_safe(config.valkey)}") from None
    metrics = Metrics()
    courier = CourierClient(config.courier_url, metrics=metrics)
    lookups = Lookups(db)
    registry = Registry()
    metrics.watch(registry, redis)
    scripts = Scripts(redis)
    outbox = Outbox(redis, scripts)
    delivery = Delivery(redis, outbox, registry, ack_timeout=config.ack_timeout, max_attempts=config.max_attempts,
                        max_buffer=config.max_write_buffer, stall_timeout=config.ping_timeout, metrics=metrics)
    courier_queue = CourierQueue(redis, scripts, courier, lookups, expiry=config.inbound_expiry)
    mailer = Mailer(config.smtp_url) if config.smtp_url else None
    expiry = Expiry(redis, scripts, outbox, courier_queue, lookups, mailer, expiry=config.msg_expiry)
    limits = Limits(config, scripts)
    chats = Chats(db, lookups, outbox, delivery, courier_queue, limits, config.storage_url, metrics)
    return Services(config, db, redis, scripts, courier, lookups, outbox, registry, delivery, courier_queue,
                    expiry, chats, limits, metrics)


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
        websocket_ping_interval=services.config.ping_interval,
        websocket_ping_timeout=services.config.ping_timeout,
        websocket_max_message_size=services.config.max_message_bytes,
        **extra,
    )


def make_metrics_app(services: Services) -> Application:
    """The Prometheus endpoint, served apart from the public port so it is never exposed by accident."""
    return Application(metrics_handlers.routes, metrics=services.metrics)


def _safe(url: str) -> str:
    """A URL fit for a log line: without its password."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def tune_collector():
    """Freeze what start-up made (modules, the app, the services) so that collections never walk it
    again, and collect the young generation every 10,000 allocations instead of every 700: with
    CPython's defaults, collections took about a sixth of chip's CPU under load (BENCHMARKS.md)."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


async def serve(config: Config):
    try:
        services = await build(config)
    except Unavailable as e:
        settings.fail(e.message)
    app = make_app(services)
    try:
        # no xheaders: they would trust anyone's X-Forwarded-For; Limits.client_ip trusts only
        # --trusted-proxies
        server = app.listen(config.port, config.address)
        metrics_server = None
        if config.metrics_port:
            metrics_server = make_metrics_app(services).listen(config.metrics_port, "localhost")
    except OSError as e:
        services.db.close()
        await services.redis.aclose()
        settings.fail(f"cannot listen on {config.address}:{config.port} (metrics {config.metrics_port}): "
                      f"{e.strerror}")
    await services.start()
    tune_collector()
    logger.info("chip listening on %s:%d instance=%s courier=%s", config.address, config.port,
                config.instance_id, _safe(config.courier_url))

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()

    logger.info("shutting down: %d open socket(s)", services.registry.open_count)
    server.stop()
    if metrics_server is not None:
        metrics_server.stop()
    # sockets get their 1001 first; then no HTTP request may still be running when Redis,
    # the database and the Courier client close
    services.registry.close_all(1001, "server shutting down")
    await server.close_all_connections()
    if metrics_server is not None:
        await metrics_server.close_all_connections()
    await services.stop()
    logger.info("stopped")


def main(argv=None):
    config = settings.load(argv)
    settings.setup_logging(config)
    if config.sentry_dsn:
        import sentry_sdk
        sentry_sdk.init(dsn=config.sentry_dsn)
    # uvloop: the same asyncio loop Tornado runs on, with less overhead per socket operation
    uvloop.run(serve(config))


if __name__ == "__main__":
    main()
