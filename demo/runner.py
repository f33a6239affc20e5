"""The demo, wired: seed the database, start the Courier simulator, then chip with the demo pages.

Used by `python -m demo` (on embedded servers) and by the browser test (on the test's servers),
so the test exercises the very wiring `make demo` runs.
"""

import logging

import chip
from demo import seed, web
from demo.bot import Simulator
from services.config import Config

logger = logging.getLogger(__name__)


class Demo:
    def __init__(
        self, db: str, valkey: str, port: int, address: str = "localhost", host: str = "localhost", pause: float = 0.8
    ):
        self.db = db
        self.valkey = valkey
        self.port = port
        self.address = address
        self.public_url = f"http://{host}:{port}"  # what the visitor's browser uses
        self.pause = pause
        self.server = None
        self.courier = None
        self.seed = None

    @property
    def services(self) -> chip.Services:
        return self.server.services

    @property
    def page_url(self) -> str:
        return f"{self.public_url}/wc/demo/{self.seed.channel_uuid}/"

    def config(self, courier_url: str) -> Config:
        return Config(
            address=self.address,
            port=self.port,
            db=self.db,
            valkey=self.valkey,
            courier_url=courier_url,
            storage_url=self.public_url + web.MEDIA_PATH,
            instance_id="demo",
        )

    async def start(self):
        self.seed = seed.ensure(self.db, f"{self.public_url}/wc/send")
        self.courier = await Simulator(
            self.db, self.seed, chip_url=self.public_url, public_url=self.public_url, pause=self.pause
        ).start()
        try:
            server = chip.Server(await chip.build(self.config(self.courier.url)), routes=web.routes())
        except Exception:
            await self.courier.stop()
            raise
        try:
            server.listen()
        except OSError:
            await server.abandon()
            await self.courier.stop()
            raise
        self.server = server
        await server.start()
        logger.info("demo page at %s", self.page_url)
        return self

    async def stop(self):
        """chip first (its sockets close with 1001 and its last Courier calls land), then the simulator."""
        if self.server is not None:
            await self.server.stop()
        if self.courier is not None:
            await self.courier.stop()
