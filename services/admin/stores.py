"""What an admin command talks to: the servers' Redis (one server, Sentinel or a cluster, through
the same client as the server) and RapidPro's database, opened on first use."""

import redis.asyncio as aioredis

from models import MODELS, Database
from services.config import Config
from services.shutdown import settle
from services.store.client import connect
from services.store.deadletters import DeadLetters
from services.store.pubsub import WakeChannels
from services.store.scripts import Scripts


class Stores:
    def __init__(self, config: Config):
        self.config = config
        self.redis: aioredis.Redis = connect(config.valkey)
        self.scripts = Scripts(self.redis)
        self.dead_letters = DeadLetters(
            self.redis,
            self.scripts,
            ttl=config.dead_letter_ttl,
            most=config.dead_letter_max,
            most_per_channel=config.dead_letter_max_per_channel,
        )
        self._db = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.config.db, MODELS, pool_size=1)
        return self._db

    async def publish_command(self) -> str:
        """The command that wakes a chat's process, as the running servers publish it."""
        wakes = WakeChannels(self.redis)
        await wakes.start()
        return wakes.publish

    async def close(self):
        await self.scripts.stop()
        await settle([self.redis.aclose()], 2.0, "closing Redis connections", "the process's exit closes them")
        if self._db is not None:
            self._db.close()
