"""Prometheus scrapes: GET /metrics on the separate --metrics-port (never on the public port), and
GET /version for load balancers and operators, which the public port keeps to itself."""

from prometheus_client import CONTENT_TYPE_LATEST
from tornado.web import RequestHandler

from services.config import VERSION


class MetricsHandler(RequestHandler):
    async def get(self):
        body = await self.settings["metrics"].scrape()
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(body)


class VersionHandler(RequestHandler):
    def get(self):
        """GET /version -> 200 {"version": ...}."""
        self.finish({"version": VERSION})


routes = [(r"/metrics", MetricsHandler), (r"/version", VersionHandler)]
