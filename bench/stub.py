"""A Courier stub for the benchmark: answers every receive at once with 200 and counts what it got.

`python -m bench.stub PORT`; GET /stats returns {"requests": n, "events": {type: n}}.
"""

import sys
from collections import Counter

import orjson
from tornado.ioloop import IOLoop
from tornado.web import Application, RequestHandler

HANDLED = b'{"message": "Events Handled", "data": []}'


class Receive(RequestHandler):
    def post(self, channel_uuid):
        stats = self.settings["stats"]
        stats["requests"] += 1
        for event in orjson.loads(self.request.body)["events"]:
            stats[event["type"]] += 1
        self.set_header("Content-Type", "application/json")
        self.finish(HANDLED)


class Stats(RequestHandler):
    def get(self):
        stats = self.settings["stats"]
        self.finish(orjson.dumps({"requests": stats["requests"],
                                  "events": {k: v for k, v in stats.items() if k != "requests"}}))


def main():
    app = Application([(r"/c/chp/([^/]+)/receive", Receive), (r"/stats", Stats)], stats=Counter())
    app.listen(int(sys.argv[1]), "127.0.0.1")
    IOLoop.current().start()


if __name__ == "__main__":
    main()
