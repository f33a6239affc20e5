"""A Courier stub for the benchmark: answers every receive at once with 200 and counts what it got.

`python -m bench.stub PORT`; GET /stats returns {"requests": n, "events": {type: n}}.

The stub shares the machine's two cores with the server under test, so it is kept as cheap as an
HTTP server can be in Python: httptools' C parser under a bare asyncio protocol on uvloop (a
Tornado application here spent about 180 us of CPU per Courier call, a core's third at chip's
maximum, and took it from the server being measured).
"""

import asyncio
import re
import sys
from collections import Counter

import httptools
import orjson
import uvloop

HANDLED = b'{"message": "Events Handled", "data": []}'
RECEIVE = re.compile(rb"/c/chp/[^/?]+/receive")


def response(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class Receive(asyncio.Protocol):
    """One keep-alive connection; requests are answered in order as each one's body ends."""

    def __init__(self, stats: Counter):
        self.stats = stats
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.url = b""
        self.body = []

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # nothing here upgrades
            self.transport.write(response(b"400 Bad Request", b'{"error": "bad request"}'))
            self.transport.close()

    # httptools' callbacks

    def on_message_begin(self):
        self.url, self.body = b"", []

    def on_url(self, url: bytes):
        self.url += url

    def on_body(self, body: bytes):
        self.body.append(body)

    def on_message_complete(self):
        method = self.parser.get_method()
        if method == b"GET" and self.url == b"/stats":
            self.transport.write(
                response(
                    b"200 OK",
                    orjson.dumps(
                        {
                            "requests": self.stats["requests"],
                            "events": {k: v for k, v in self.stats.items() if k != "requests"},
                        }
                    ),
                )
            )
        elif method == b"POST" and RECEIVE.fullmatch(self.url):
            events = orjson.loads(b"".join(self.body))["events"]
            self.stats["requests"] += 1
            for event in events:
                self.stats[event["type"]] += 1
            self.transport.write(response(b"200 OK", HANDLED))
        else:
            self.transport.write(response(b"404 Not Found", b'{"error": "not found"}'))
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(port: int):
    stats = Counter()
    server = await asyncio.get_running_loop().create_server(lambda: Receive(stats), "127.0.0.1", port)
    await server.serve_forever()


def main():
    uvloop.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
