"""chip serving the widget: the loader, the content-hashed bundle, caching, size, and --widget off."""

import gzip
import hashlib
import shutil
import subprocess

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from handlers.widget import DIST, WidgetFiles
from services.config import parse

WIDGET = DIST.parent


async def fetch(url, **kwargs):
    try:
        return await AsyncHTTPClient().fetch(url, follow_redirects=False, **kwargs)
    except HTTPClientError as e:
        return e.response


async def test_loader_points_at_the_bundle_by_its_content_hash(chip_server):
    loader = await fetch(chip_server.url + "/wc/widget.js")
    assert loader.code == 200
    assert loader.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert loader.headers["Cache-Control"] == "public, max-age=300"
    assert loader.headers["X-Content-Type-Options"] == "nosniff"
    digest = hashlib.sha256((DIST / "chip.js").read_bytes()).hexdigest()[:16]
    assert f'"widget/{digest}.js"' in loader.body.decode()
    assert b"__BUNDLE__" not in loader.body

    bundle = await fetch(f"{chip_server.url}/wc/widget/{digest}.js")
    assert bundle.code == 200
    assert bundle.body == (DIST / "chip.js").read_bytes()
    assert bundle.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    etag = bundle.headers["Etag"]
    again = await fetch(f"{chip_server.url}/wc/widget/{digest}.js", headers={"If-None-Match": etag})
    assert again.code == 304


async def test_bundle_is_gzipped_for_browsers_that_ask_and_at_most_30_kb(chip_server):
    digest = hashlib.sha256((DIST / "chip.js").read_bytes()).hexdigest()[:16]
    bundle = await fetch(
        f"{chip_server.url}/wc/widget/{digest}.js", headers={"Accept-Encoding": "gzip"}, decompress_response=False
    )
    assert bundle.headers["Content-Encoding"] == "gzip"
    assert bundle.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(bundle.body) == (DIST / "chip.js").read_bytes()
    assert len(bundle.body) <= 30 * 1024, f"the widget is {len(bundle.body)} bytes gzipped"


async def test_an_old_hash_is_sent_on_to_this_release(chip_server):
    digest = hashlib.sha256((DIST / "chip.js").read_bytes()).hexdigest()[:16]
    old = await fetch(chip_server.url + "/wc/widget/0123456789abcdef.js")
    assert old.code == 302
    assert old.headers["Location"] == f"/wc/widget/{digest}.js"
    assert old.headers["Cache-Control"] == "no-cache"


def test_widget_is_on_unless_turned_off():
    assert parse([], {}).widget is True
    assert parse(["--widget", "off"], {}).widget is False
    assert parse([], {"CHIP_WIDGET": "false"}).widget is False


async def test_widget_off_answers_404(start_chip):
    server = await start_chip(widget=False)
    for path in ("/wc/widget.js", "/wc/widget/0123456789abcdef.js"):
        response = await fetch(server.url + path)
        assert response.code == 404
        assert b"turned off" in response.body


def test_the_widget_files_are_read_when_first_asked_for_not_before(tmp_path):
    """A tree without widget/dist (a server run with --widget off) starts; the files are read on use."""
    files = WidgetFiles(tmp_path)  # nothing built there yet
    (tmp_path / "chip.js").write_bytes(b"chip()")
    (tmp_path / "loader.js").write_bytes(b'add("__BUNDLE__")')
    digest = hashlib.sha256(b"chip()").hexdigest()[:16]
    assert files.loader.body == f'add("widget/{digest}.js")'.encode()
    assert files.bundle_path == f"/wc/widget/{digest}.js"
    assert gzip.decompress(files.bundle.gzipped) == b"chip()"


@pytest.mark.skipif(
    not (WIDGET / "node_modules" / "esbuild").exists() or not shutil.which("node"),
    reason="needs node and `npm ci` in widget/",
)
def test_committed_build_is_the_build_of_the_sources(tmp_path):
    copy = tmp_path / "widget"
    shutil.copytree(WIDGET, copy, ignore=shutil.ignore_patterns("dist", "node_modules"))
    (copy / "node_modules").symlink_to(WIDGET / "node_modules")
    subprocess.run(["node", "build.mjs"], cwd=copy, check=True, timeout=60)
    for name in ("chip.js", "loader.js"):
        assert (copy / "dist" / name).read_bytes() == (DIST / name).read_bytes(), (
            f"widget/dist/{name} is stale: run `npm run build` in widget/"
        )
