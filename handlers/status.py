from handlers.base import JSONHandler
from services.config import VERSION


class StatusHandler(JSONHandler):
    def get(self):
        """GET / -> 200 {"version": ...}, for load balancers."""
        self.write_json({"version": VERSION})


routes = [(r"/", StatusHandler)]
