"""`python chip.py admin <command>`: the operator's commands (services/admin/cli.py says what each
does). They run apart from the servers, with the same settings, on the same Redis and database."""

import asyncio
import sys

from redis.exceptions import RedisClusterException, RedisError

from services import config as configuration
from services.admin import chat, cli, letters, status
from services.admin.stores import Stores
from services.config import ConfigError, safe_url

COMMANDS = {"status": status.run, "chat": chat.run, "dead-letters": letters.run}


def main(argv: list) -> int:
    """Run a command; its exit status (a bad setting or command line: one line on stderr, and 2)."""
    try:
        config, args = cli.parse(argv)
    except ConfigError as e:
        configuration.fail(str(e))
    try:
        return asyncio.run(_run(config, args))
    except (RedisError, RedisClusterException, OSError) as e:
        print(f"chip admin: valkey/redis at {safe_url(config.valkey)} does not answer: {e}", file=sys.stderr)
        return 1


async def _run(config, args) -> int:
    stores = Stores(config)
    try:
        return await COMMANDS[args.command](stores, args)
    finally:
        await stores.close()
