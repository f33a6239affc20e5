"""deploy/systemd/chip@.service: systemd accepts it, and what it starts is what chip's parser accepts."""

import configparser
import shlex
import shutil
import subprocess

import pytest

from services.config import parse
from tests.servers import ROOT

UNIT = ROOT / "deploy" / "systemd" / "chip@.service"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_systemd_verifies_the_unit_without_a_warning(tmp_path):
    # an instance of it, with this checkout where the README puts the code
    text = (
        UNIT.read_text()
        .replace("/opt/chip", str(ROOT))
        .replace("/etc/chip/chip.env", str(ROOT / "deploy" / "chip.env"))
    )
    (tmp_path / "chip@8070.service").write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "chip@8070.service")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr


def test_the_unit_stops_with_term_and_names_the_port_by_its_instance():
    unit = configparser.RawConfigParser(strict=False)
    unit.optionxform = str
    unit.read(UNIT)
    service = unit["Service"]
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) >= 25
    assert int(service["LimitNOFILE"]) >= 65536
    argv = shlex.split(service["ExecStart"].replace("%i", "8070").replace("%H", "host"))
    argv[argv.index("--env-file") + 1] = str(ROOT / "deploy" / "chip.env")
    config = parse(argv[2:], {})
    assert (config.port, config.metrics_port, config.instance_id) == (8070, 18070, "host-8070")
