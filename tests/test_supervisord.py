"""supervisord.conf runs what the README says: two chip processes that chip's own parser accepts,
with every shared setting in the one environment file (deploy/chip.env)."""

import configparser
import shlex

from services.config import parse, read_env_file
from tests.servers import ROOT

PROGRAM_FILE = ROOT / "deploy" / "supervisor" / "chip.conf"


def test_the_standalone_conf_can_be_driven_by_supervisorctl_and_includes_the_program_file():
    conf = configparser.RawConfigParser()
    conf.read(ROOT / "supervisord.conf")
    assert {"supervisord", "unix_http_server", "supervisorctl", "rpcinterface:supervisor"} <= set(conf.sections())
    assert conf.get("supervisord", "pidfile") and not conf.has_option("supervisord", "minfds")
    assert (ROOT / conf.get("include", "files")).resolve() == PROGRAM_FILE
    assert not [s for s in conf.sections() if s.startswith("program:")]  # written once, in the program file


def test_two_processes_on_8070_and_8071_with_distinct_ids_stopped_by_term():
    conf = configparser.RawConfigParser()
    conf.read(PROGRAM_FILE)
    assert "supervisord" not in conf.sections()  # it would override the system supervisord's own
    programs = [s for s in conf.sections() if s.startswith("program:")]
    assert len(programs) == 2
    configs = []
    for section in programs:
        assert conf.get(section, "stopsignal") == "TERM"
        assert not conf.has_option(section, "environment")
        argv = shlex.split(conf.get(section, "command").replace("%(host_node_name)s", "host"))
        assert argv[1].endswith("/chip.py")
        env_file = argv[argv.index("--env-file") + 1]
        assert env_file == "/etc/chip/chip.env"
        configs.append(parse([a if a != env_file else str(ROOT / "deploy" / "chip.env") for a in argv[2:]], {}))
    assert sorted(c.port for c in configs) == [8070, 8071]
    assert sorted(c.metrics_port for c in configs) == [18070, 18071]
    assert len({c.instance_id for c in configs}) == 2
    assert all(c.ssl and c.courier_url == "https://rapidpro.example.com" for c in configs)
    # the defaults would be chip's own nginx, which routes neither Courier's /c/ nor /media
    assert all(not c.storage_url.startswith(f"https://{c.domain}/") for c in configs)
    assert all(str(net) == "127.0.0.1/32" for c in configs for net in c.trusted_proxies)


def test_the_environment_file_names_only_chip_settings():
    assert set(read_env_file(str(ROOT / "deploy" / "chip.env"))) >= {"CHIP_DB", "CHIP_VALKEY", "CHIP_COURIER_URL"}
