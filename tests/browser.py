"""What the widget's browser tests stand on: Debian's Chromium driven by Playwright (no browser
download), a customer's web site on loopback (another origin than chip) whose pages embed the widget
with its one script tag, and chip itself on a port of its own, restartable under the widget."""

import json
import os
import pathlib
import struct
import zlib
from html import escape

import pytest
from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler

import chip
from demo.embedded import free_port
from services.config import Config

CHROMIUM = os.environ.get("CHIP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
)
ROOT = pathlib.Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo" / "static"
AXE = ROOT / "widget" / "node_modules" / "axe-core" / "axe.min.js"

# a site that styles everything it can reach: the widget must look the same on it
HOSTILE_CSS = """* { all: unset; font-size: 40px !important; line-height: 3 !important; font-family: serif !important; }
html { font-size: 40px; } body { display: block; margin: 40px; color: #c00; }
div, section, button, img { border: 9px dashed red !important; }"""


def png(width=60, height=40, rgb=(30, 91, 75)) -> bytes:
    """A small solid PNG, for image attachments and avatars."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def wav(seconds=0.2, rate=8000) -> bytes:
    data = b"\x80" * int(seconds * rate)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


MEDIA = {
    "photo.png": ("image/png", png()),
    "avatar.png": ("image/png", png(32, 32, (200, 120, 40))),
    "logo.png": ("image/png", png(32, 32, (255, 255, 255))),
    "voice.wav": ("audio/wav", wav()),
    "clip.wav": ("audio/wav", wav()),
    "menu.pdf": ("application/pdf", b"%PDF-1.4\n%%EOF\n"),
    # the demo's pictures, for screenshots that look like a real shop's
    **{
        path.name: ("image/svg+xml", path.read_bytes())
        for path in (DEMO / "img/logo.svg", DEMO / "img/menu.svg", DEMO / "media/avatars/sam.svg")
    },
}


class PageHandler(RequestHandler):
    def initialize(self, site):
        self.site = site

    def get(self, path):
        name = path.removeprefix("media/")
        if name in MEDIA or path == "favicon.ico":
            kind, body = MEDIA.get(name, MEDIA["logo.png"])
            self.set_header("Content-Type", kind)
            return self.finish(body)
        if path in self.site.scripts:
            self.set_header("Content-Type", "text/javascript")
            return self.finish(self.site.scripts[path])
        if path == "hostile.css":
            self.set_header("Content-Type", "text/css")
            return self.finish(HOSTILE_CSS)
        if path not in self.site.pages:
            self.set_status(404)
            return self.finish("no such page")
        html, csp = self.site.pages[path]
        if csp:
            self.set_header("Content-Security-Policy", csp)
        self.finish(html)


class Site:
    """A customer's site at http://localhost:<port> embedding chip's widget from http://127.0.0.1:<port>."""

    def __init__(self, chip_values: dict):
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.chip_port = free_port()
        self.chip_url = f"http://127.0.0.1:{self.chip_port}"
        self.chip_values = dict(
            chip_values, address="127.0.0.1", port=self.chip_port, instance_id="widget", storage_url=self.url + "/media"
        )
        self.pages = {}
        self.scripts = {}  # the site's own scripts, such as one using the widget's API
        self.server = None
        self.chip = None

    @property
    def csp(self) -> str:
        """The policy the README tells sites to add for the widget, and nothing else."""
        ws = self.chip_url.replace("http", "ws", 1)
        return (
            f"default-src 'none'; script-src {self.chip_url}; connect-src {ws}; img-src {self.url}; "
            f"media-src {self.url}; style-src {self.url}; base-uri 'none'; form-action 'none'"
        )

    async def start(self):
        self.server = HTTPServer(Application([(r"/(.*)", PageHandler, {"site": self})]))
        self.server.listen(self.port, "127.0.0.1")
        await self.start_chip()
        return self

    async def start_chip(self, **overrides):
        self.chip = chip.Server(await chip.build(Config(**dict(self.chip_values, **overrides))))
        self.chip.listen()
        await self.chip.start()

    async def stop_chip(self):
        """What a restart does to the widget's socket: closed with 1001, then nothing answers."""
        await self.chip.stop()
        self.chip = None

    async def stop(self):
        if self.chip is not None:
            await self.stop_chip()
        self.server.stop()
        await self.server.close_all_connections()

    def page(
        self,
        channel_uuid: str,
        name="index.html",
        csp=True,
        hostile=True,
        page_title="Our shop",
        script=True,
        hooks="",
        **data,
    ) -> str:
        """A page with only the script tag (data- attributes from `data`; none with script=False), and
        before it, `hooks` as a script file of the site's own; its URL."""
        attrs = "".join(f' data-{key.replace("_", "-")}="{escape(str(value))}"' for key, value in data.items())
        style = f'<link rel="stylesheet" href="{self.url}/hostile.css">' if hostile else ""
        self.pages[name] = (
            f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(page_title)}</title>'
            f"{style}</head><body><h1>Welcome to our shop</h1><p>Some of the site's own text.</p>"
            + (f'<script src="{self.url}/{name}.js"></script>' if hooks else "")
            + (
                f'<script src="{self.chip_url}/wc/widget.js" data-channel="{channel_uuid}"{attrs} async></script>'
                if script
                else ""
            )
            + "</body></html>",
            (self.csp.replace("script-src", f"script-src {self.url}") if hooks else self.csp) if csp else None,
        )
        if hooks:
            self.scripts[f"{name}.js"] = hooks
        return f"{self.url}/{name}"

    def media(self, name: str) -> str:
        return f"{self.url}/media/{name}"


class Browser:
    """Chromium under Playwright; every context (and so every page) is closed by close()."""

    def __init__(self):
        self.playwright = None
        self.browser = None
        self.contexts = []
        self.problems = []  # uncaught exceptions in any page

    async def start(self):
        from playwright.async_api import async_playwright

        self.playwright = await async_playwright().start()
        self.browser = await self.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        return self

    async def page(self, context=None, **options):
        """A page in a new context (its own storage), or in `context` (a second tab)."""
        if context is None:
            options.setdefault("viewport", {"width": 1280, "height": 860})
            context = await self.browser.new_context(**options)
            context.set_default_timeout(10000)
            self.contexts.append(context)
        page = await context.new_page()
        page.console_errors = []
        page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
        page.on("pageerror", lambda error: self.problems.append(error))
        return page

    async def close(self):
        for context in self.contexts:
            await context.close()
        if self.browser is not None:
            await self.browser.close()
        if self.playwright is not None:
            await self.playwright.stop()


async def chat_id(page) -> str:
    return await page.evaluate(
        "Object.keys(localStorage).filter(k => k.startsWith('chip.chat.')).map(k => localStorage[k])[0]"
    )


async def say(site, courier, channel_uuid, chat, text, **msg) -> int:
    """Courier sends a message to the chat (a msgs_msg row, then /wc/send, as RapidPro and Courier do); its id."""
    from tornado.httpclient import AsyncHTTPClient

    # the widget has its chat_started once Courier took it, or after 10 s of a slow Courier (a loaded
    # machine): RapidPro can only write to the chat once Courier has made its contact
    await courier.wait_for(lambda: courier.of_type("chat_started", chat), timeout=20)
    msg_id = await courier.run(
        courier.store.msg_out,
        channel_uuid,
        chat,
        text,
        msg.get("attachments"),
        msg.get("quick_replies"),
        None,
        msg.get("user_id"),
    )
    body = {"id": msg_id, "text": text, "origin": "chat" if msg.get("user_id") else "flow", **msg}
    await AsyncHTTPClient().fetch(
        f"{site.chip_url}/wc/send/{channel_uuid}/",
        method="POST",
        body=json.dumps({"chat_id": chat, "secret": "sesame", "msg": body}),
    )
    return msg_id


async def screenshot(page, request, name):
    """Into docs/ when CHIP_SCREENSHOTS=docs (the README's pictures), else into the test's tmp_path."""
    folder = ROOT / "docs" if os.environ.get("CHIP_SCREENSHOTS") == "docs" else request.getfixturevalue("tmp_path")
    await page.screenshot(path=str(folder / name))


async def until(page, expression: str, timeout=5.0):
    """Wait for a JavaScript expression to be true in the page. (wait_for_function evaluates a
    string with eval, which the tests' strict CSP forbids.)"""
    for _ in range(int(timeout / 0.05)):
        if await page.evaluate(expression):
            return
        await page.wait_for_timeout(50)
    raise AssertionError(f"not true within {timeout}s: {expression}")
