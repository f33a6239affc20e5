"""Prometheus scrapes: GET /metrics on the separate --metrics-port (never on the public port)."""

from prometheus_client import CONTENT_TYPE_LATEST
from tornado.web import RequestHandler


class MetricsHandler(RequestHandler):
    async def get(self):
        body = await self.settings["metrics"].scrape()
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(body)


routes = [(r"/metrics", MetricsHandler)]
