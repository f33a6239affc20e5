"""Probes for load balancers and orchestrators: liveness at GET /, readiness at GET /ready."""

from handlers.base import JSONHandler
from services.config import VERSION


class LiveHandler(JSONHandler):
    def get(self):
        """GET / -> 200 {"status": "ok"} while the process answers at all (liveness), with
        "version" only under --public-version: the public need not learn what to attack."""
        body = {"status": "ok"}
        if self.config.public_version:
            body["version"] = VERSION
        self.write_json(body)


class ReadyHandler(JSONHandler):
    def get(self):
        """GET /ready -> 200 {"ready": true} once the database and Redis have answered; 503
        {"ready": false, "error": "starting: waiting for ..."} before that and while shutting down."""
        if self.readiness.ready:
            self.write_json({"ready": True})
        else:
            self.write_json({"ready": False, "error": self.readiness.reason}, 503)


routes = [(r"/", LiveHandler), (r"/ready", ReadyHandler)]
