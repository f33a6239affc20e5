"""Servers the tests start themselves: a PostgreSQL cluster to stop and start, and chip.py run as
operators run it."""

import asyncio
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psycopg2
import pytest
from tornado.testing import bind_unused_port

from demo.seed import create_tables

ROOT = pathlib.Path(__file__).resolve().parent.parent


class SparePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary folder) on a free loopback port,
    with RapidPro's tables, to stop and start at will."""

    def __init__(self):
        sock, self.port = bind_unused_port()
        sock.close()
        bins = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            pytest.skip("PostgreSQL server binaries are not installed")
        self.bin = bins[-1]
        # not under pytest's tmp_path: its parent is private to root, and the server runs as postgres
        directory = self.directory = pathlib.Path(tempfile.mkdtemp(prefix="chip-test-pg-"))
        self.data = directory / "pgdata"
        self.data.mkdir()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.process = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(directory, "postgres")
            shutil.chown(self.data, "postgres")
        self.user = "postgres" if os.geteuid() == 0 else None
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N"],
            user=self.user,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def start(self):
        self.process = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.data),
                "-c",
                "fsync=off",
            ],
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                psycopg2.connect(self.url).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.05)
        raise RuntimeError("spare PostgreSQL did not start")

    def load_schema(self):
        conn = psycopg2.connect(self.url)
        with conn, conn.cursor() as cur:
            create_tables(cur)
        conn.close()

    def stop(self):
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: drops every client, as an outage does
            self.process.wait(timeout=30)
            self.process = None


class ChipProcess:
    """chip.py run as operators run it, in a process of its own on a free loopback port; or on
    `address`, run through `wrapper` (e.g. `ip netns exec chip-h1`, which execs chip: the PID is chip's)."""

    def __init__(self, *args, env=None, address="127.0.0.1", wrapper=()):
        sock, self.port = bind_unused_port()
        sock.close()
        self.url = f"http://{address}:{self.port}"
        self.ws_url = f"ws://{address}:{self.port}"
        self.proc = subprocess.Popen(
            [*wrapper, sys.executable, str(ROOT / "chip.py"), "--address", address, "--port", str(self.port), *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def ready(self, http, path="/ready", timeout=10.0):
        """Return once GET `path` answers 200: /ready once the stores have answered, / once listening."""
        for _ in range(int(timeout / 0.05)):
            if self.proc.poll() is not None:
                raise AssertionError(f"chip exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                status, _ = await http(self.url + path, request_timeout=1)
                if status == 200:
                    return self
            except OSError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"chip did not answer 200 at {path} within {timeout:g} s")

    def terminate(self, timeout=15) -> tuple[int, str]:
        """SIGTERM, as supervisord stops it: the exit status and everything chip wrote on stderr."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()
