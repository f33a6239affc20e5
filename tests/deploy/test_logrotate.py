"""deploy/logrotate/chip rotates the log of every chip process supervisord writes, and not supervisord's
own, which supervisord rotates by size."""

import configparser
import fnmatch
import re

from tests.servers import ROOT

LOGROTATE = ROOT / "deploy" / "logrotate" / "chip"


def rotated_patterns() -> list[str]:
    return re.findall(r"^(\S+)\s*\{", LOGROTATE.read_text(), flags=re.M)


def test_every_chip_log_is_rotated_and_supervisords_own_is_not():
    programs = configparser.RawConfigParser()
    programs.read(ROOT / "deploy" / "supervisor" / "chip.conf")
    chip_logs = [programs.get(s, "stdout_logfile") for s in programs.sections() if s.startswith("program:")]
    standalone = configparser.RawConfigParser()
    standalone.read(ROOT / "supervisord.conf")
    own = standalone.get("supervisord", "logfile")
    patterns = rotated_patterns()
    assert len(chip_logs) == 2 and own == "/var/log/chip/supervisord.log"
    for log in chip_logs:
        assert any(fnmatch.fnmatch(log, pattern) for pattern in patterns), log
        # supervisord would rotate it too, and lose what logrotate had not yet copied
        assert programs.get(f"program:{log.rsplit('/', 1)[1][:-4]}", "stdout_logfile_maxbytes") == "0"
    assert not any(fnmatch.fnmatch(own, pattern) for pattern in patterns)
    assert (
        not standalone.has_option("supervisord", "logfile_maxbytes")
        or standalone.get("supervisord", "logfile_maxbytes") != "0"
    )
