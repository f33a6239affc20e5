"""The chat widget sites embed with one script tag: GET /wc/widget.js, a small loader cached for
five minutes, which adds the bundle GET /wc/widget/<content hash>.js, cached for a year.

Both are built from widget/src and widget/i18n into widget/dist (committed, so chip needs no Node)
and read on the first request for them, never on import: `--widget off` answers 404 for both and
reads nothing. Not Tornado's StaticFileHandler: the loader is filled in with the bundle's hash, and
that hash is in the bundle's path (an old one redirected), where StaticFileHandler puts a ?v= query.
"""

import functools
import gzip
import hashlib
import logging
from pathlib import Path

from handlers.base import JSONHandler
from services.errors import NotFound

logger = logging.getLogger(__name__)

DIST = Path(__file__).resolve().parent.parent / "widget" / "dist"
LOADER_CACHE = "public, max-age=300"  # a new release reaches pages within five minutes
BUNDLE_CACHE = "public, max-age=31536000, immutable"  # its URL changes with its content


class Asset:
    """A file's bytes, and the same gzipped once, when first asked for (browsers ask for gzip; chip
    may have no proxy doing it)."""

    def __init__(self, body: bytes):
        self.body = body

    @functools.cached_property
    def gzipped(self) -> bytes:
        return gzip.compress(self.body, 9, mtime=0)


class WidgetFiles:
    """The built widget in `folder`, read when first used: the bundle, the hash in its URL, and the
    loader pointing at that URL."""

    def __init__(self, folder: Path = DIST):
        self.folder = folder

    @functools.cached_property
    def bundle(self) -> Asset:
        return Asset((self.folder / "chip.js").read_bytes())

    @functools.cached_property
    def hash(self) -> str:
        return hashlib.sha256(self.bundle.body).hexdigest()[:16]

    @property
    def bundle_path(self) -> str:
        return f"/wc/widget/{self.hash}.js"

    @functools.cached_property
    def loader(self) -> Asset:
        loader = (self.folder / "loader.js").read_bytes()
        return Asset(loader.replace(b"__BUNDLE__", f"widget/{self.hash}.js".encode()))


class WidgetHandler(JSONHandler):
    def initialize(self, files: WidgetFiles):
        self.files = files

    def prepare(self):
        if not self.config.widget:
            raise NotFound("the chat widget is turned off on this server (--widget)")

    def serve(self, asset: Asset, cache_control: str):
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", cache_control)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Vary", "Accept-Encoding")
        if "gzip" in self.request.headers.get("Accept-Encoding", ""):
            self.set_header("Content-Encoding", "gzip")
            self.finish(asset.gzipped)
        else:
            self.finish(asset.body)
        # Tornado adds the ETag and answers a matching If-None-Match with 304


class LoaderHandler(WidgetHandler):
    def get(self):
        """GET /wc/widget.js -> the loader, which adds the bundle with the script tag's data- attributes."""
        self.serve(self.files.loader, LOADER_CACHE)

    head = get


class BundleHandler(WidgetHandler):
    def get(self, content_hash: str):
        """GET /wc/widget/<hash>.js -> the widget; another hash (a page's loader from before an
        upgrade, or from a process of another release) is sent on to this release's bundle."""
        if content_hash != self.files.hash:
            self.set_header("Cache-Control", "no-cache")
            return self.redirect(self.files.bundle_path)
        self.serve(self.files.bundle, BUNDLE_CACHE)

    head = get


def _routes() -> list:
    files = WidgetFiles()
    return [
        (r"/wc/widget\.js", LoaderHandler, {"files": files}),
        (r"/wc/widget/([0-9a-f]{1,64})\.js", BundleHandler, {"files": files}),
    ]


routes = _routes()
