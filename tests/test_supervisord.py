"""supervisord.conf runs what the README says: two chip processes that chip's own parser accepts."""

import configparser
import shlex

from services.config import parse
from tests.servers import ROOT


def test_two_processes_on_8070_and_8071_with_distinct_ids_stopped_by_term():
    conf = configparser.RawConfigParser()
    conf.read(ROOT / "supervisord.conf")
    programs = [s for s in conf.sections() if s.startswith("program:")]
    assert len(programs) == 2
    configs = []
    for section in programs:
        assert conf.get(section, "stopsignal") == "TERM"
        argv = shlex.split(conf.get(section, "command").replace("%(host_node_name)s", "host"))
        assert argv[1].endswith("/chip.py")
        env = dict(item.split("=", 1) for item in conf.get(section, "environment").split(","))
        configs.append(parse(argv[2:], {k: v.strip('"') for k, v in env.items()}))
    assert sorted(c.port for c in configs) == [8070, 8071]
    assert len({c.instance_id for c in configs}) == 2
    assert all(c.ssl and c.courier_url == "https://chat.example.com" for c in configs)
