"""The demo's pages, mounted only by the demo runner (chip.make_app(services, routes=web.routes())).

/wc/demo/{channel}/ is a customer's web page with chip's chat widget on it, added with its one
script tag (/wc/widget.js, served by chip itself); /wc/demo/static/ holds the page's own files and
the bot's attachments; /wc/demo/media/ stands in for RapidPro's storage, where users' avatars live.
"""

import logging
from pathlib import Path

from tornado.template import Loader
from tornado.web import RequestHandler, StaticFileHandler

from handlers.base import ServicesMixin

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
MEDIA_PATH = "/wc/demo/media"


class DemoPage(ServicesMixin, RequestHandler):
    def initialize(self, templates: Loader):
        self.templates = templates

    async def get(self, channel_uuid: str):
        channel = await self.lookups.channel(channel_uuid)
        if channel is None:
            self.set_status(404)
            return self.finish("No such chat channel.")
        self.finish(self.templates.load("index.html").generate(channel_uuid=channel.uuid))


def routes() -> list:
    return [
        (r"/wc/demo/static/(.*)", StaticFileHandler, {"path": str(STATIC)}),
        (MEDIA_PATH + r"/(.*)", StaticFileHandler, {"path": str(STATIC / "media")}),
        (r"/wc/demo/([^/]+)/?", DemoPage, {"templates": Loader(str(HERE / "templates"))}),
    ]
