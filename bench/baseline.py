"""The ceiling: a minimal Tornado server speaking just enough of chip's protocol for the benchmark.

`start_chat` binds the socket to its chat_id and answers `chat_resumed`; `POST /wc/send/{channel}/`
writes a `chat_out` frame straight to the chat's socket and answers 200. No Redis, no database,
acks ignored, nothing told to Courier. `python -m bench.baseline PORT`.
"""

import sys
from datetime import datetime, timezone

import orjson
from tornado.ioloop import IOLoop
from tornado.web import Application, RequestHandler
from tornado.websocket import WebSocketHandler

from services import events


class Socket(WebSocketHandler):
    chat_id = None

    def check_origin(self, origin):
        return True

    def on_message(self, message):
        command = orjson.loads(message)
        if command.get("type") == "start_chat" and self.chat_id is None:
            self.chat_id = command["chat_id"]
            self.settings["sockets"][self.chat_id] = self
            self.write_message(orjson.dumps(events.chat_resumed(self.chat_id, "")).decode())

    def on_close(self):
        if self.settings["sockets"].get(self.chat_id) is self:
            del self.settings["sockets"][self.chat_id]


class Send(RequestHandler):
    def post(self, channel_uuid):
        body = orjson.loads(self.request.body)
        socket = self.settings["sockets"].get(body["chat_id"])
        if socket is None:
            self.set_status(400)
            return self.finish({"error": "no such chat"})
        msg = body["msg"]
        out = events.msg_out(msg["id"], msg["text"], msg["origin"], datetime.now(timezone.utc))
        socket.write_message(orjson.dumps(events.chat_out(out)).decode())
        self.finish({"status": "queued"})


class Status(RequestHandler):
    def get(self):
        self.finish({"version": "baseline"})


def main():
    app = Application([(r"/wc/connect/([^/]+)/?", Socket), (r"/wc/send/([^/]+)/?", Send), (r"/", Status)], sockets={})
    app.listen(int(sys.argv[1]), "127.0.0.1")
    IOLoop.current().start()


if __name__ == "__main__":
    main()
