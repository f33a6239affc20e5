"""The probes: liveness at GET /, readiness at GET /ready, and what they tell the public."""

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.testing import bind_unused_port
from tornado.websocket import websocket_connect

from services.config import VERSION


async def test_liveness_and_readiness_name_no_version(chip_server):
    client = AsyncHTTPClient()
    live = await client.fetch(chip_server.url + "/")
    assert live.code == 200 and live.body == b'{"status":"ok"}'
    assert "Server" not in live.headers  # Tornado's default would be TornadoServer/<version>
    ready = await client.fetch(chip_server.url + "/ready")
    assert ready.code == 200 and ready.body == b'{"ready":true}'
    missing = await client.fetch(chip_server.url + "/nope", raise_error=False)
    assert missing.code == 404 and "Server" not in missing.headers


async def test_the_socket_upgrade_names_no_server(chip_server, channel):
    conn = await websocket_connect(HTTPRequest(f"{chip_server.ws_url}/wc/connect/{channel['uuid']}/"))
    try:
        assert "Server" not in conn.headers
    finally:
        conn.close()


async def test_public_version_shows_it_on_the_public_port(start_chip, http):
    server = await start_chip(public_version=True)
    assert await http(server.url + "/") == (200, {"status": "ok", "version": VERSION})


async def test_the_metrics_port_always_names_the_version(chip_process, http):
    sock, metrics_port = bind_unused_port()
    sock.close()
    await chip_process("--metrics-port", str(metrics_port)).ready(http)
    assert await http(f"http://127.0.0.1:{metrics_port}/version") == (200, {"version": VERSION})
