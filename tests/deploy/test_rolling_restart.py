"""deploy/rolling-restart where its restart command cannot run: one line saying what to pass, status 2,
and nothing restarted after it."""

import subprocess
import sys

import pytest

from tests.servers import ROOT

SCRIPT = ROOT / "deploy" / "rolling-restart"


def rolling_restart(*args, path: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=30, env={"PATH": path}
    )


@pytest.mark.parametrize(
    "args, missing",
    [
        ((), "supervisorctl"),  # pip's supervisor in a venv: not on PATH
        (
            ("--restart", "/opt/nowhere/bin/supervisorctl -c /opt/chip/supervisord.conf restart chip:chip-{port}"),
            "/opt/nowhere/bin/supervisorctl",
        ),
    ],
)
def test_a_restart_command_that_cannot_run_says_what_to_pass(tmp_path, args, missing):
    result = rolling_restart(*args, "8070", "8071", path=str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"rolling-restart: cannot run {missing}: No such file or directory; ")
    assert (
        "--restart '/opt/supervisor/bin/supervisorctl -c /opt/chip/supervisord.conf restart chip:chip-{port}'"
        in result.stderr
    )
    assert "8071" not in result.stdout  # it stopped at the first process
