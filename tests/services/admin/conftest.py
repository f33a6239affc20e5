"""`chip.py admin` run as an operator runs it: a process of its own on the tests' Redis and database."""

import asyncio
import os
import sys
from typing import NamedTuple

import pytest

from tests.servers import ROOT


class Ran(NamedTuple):
    status: int
    out: str
    err: str


@pytest.fixture
def admin(pg_url, redis_url):
    """await admin(*args, env=None, valkey=redis_url) -> Ran: `chip.py admin <args>` on the tests'
    database and Redis (flags after the command, as an operator writes them), without blocking the loop."""

    async def run(*args, env=None, valkey=None, settings=True) -> Ran:
        flags = ["--db", pg_url, "--valkey", valkey or redis_url] if settings else []
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "chip.py"),
            "admin",
            *args,
            *flags,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        return Ran(process.returncode, out.decode(), err.decode())

    return run
