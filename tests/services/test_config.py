"""Settings: flags, CHIP_* variables, defaults, and one clear line for a bad value."""

import dataclasses
import io
import json
import logging

import pytest

from services.config import Config, ConfigError, JsonFormatter, parse


def test_defaults():
    config = parse([], {})
    assert (config.address, config.port, config.domain, config.ssl) == ("localhost", 8070, "localhost", False)
    assert config.db == "postgres://temba:temba@localhost/temba"
    assert config.valkey == "valkey://localhost:6379/5" and config.valkey_min_replicas == 0
    assert config.courier_url == "http://localhost" and config.storage_url == "http://localhost/media"
    assert config.ack_timeout == 15 and config.log_level == "info" and config.instance_id
    assert config.log_format == "text" and config.legacy_upgrade == "auto"


def test_environment_and_flags_flag_wins():
    env = {
        "CHIP_PORT": "9000",
        "CHIP_DOMAIN": "chat.example.com",
        "CHIP_SSL": "true",
        "CHIP_COURIER_URL": "http://courier:8080",
        "CHIP_ACK_TIMEOUT": "2.5",
    }
    config = parse(["--port", "9001"], env)
    assert config.port == 9001 and config.domain == "chat.example.com" and config.ssl is True
    assert config.courier_url == "http://courier:8080"
    assert config.storage_url == "https://chat.example.com/media"  # follows --domain and --ssl
    assert config.ack_timeout == 2.5


@pytest.mark.parametrize(
    "url",
    [
        "valkey://h:1/2",
        "valkeys://h/0",
        "redis://h/3",
        "rediss://u:p@h/0",
        "unix:///run/redis.sock?db=2",
        "valkey+cluster://a:7000,b:7001/",
        "redis+cluster://a:7000",
        "valkeys+cluster://u:p@[::1]:7000/0",
        "rediss+cluster://a:7000/?ssl_ca_certs=/etc/ca.pem&socket_timeout=2",
        "valkey+sentinel://a:26379,b:26380/mymaster/3",
        "redis+sentinel://:p@a/mymaster",
        "valkeys+sentinel://a:1/m/0",
        "rediss+sentinel://a:1/m/0?ssl_cert_reqs=none",
    ],
)
def test_valkey_url_forms(url):
    assert parse(["--valkey", url], {}).valkey == url


def test_min_replicas():
    assert parse(["--valkey-min-replicas", "2"], {}).valkey_min_replicas == 2
    assert parse([], {"CHIP_VALKEY_MIN_REPLICAS": "1"}).valkey_min_replicas == 1


@pytest.mark.parametrize(
    "argv, env, message",
    [
        (["--port", "x"], {}, "argument --port: 'x' is not a number"),
        (["--port", "70000"], {}, "not a port number"),
        ([], {"CHIP_PORT": "0"}, "CHIP_PORT: '0' must be greater than zero"),
        (["--db", "mysql://x/y"], {}, "is not a URL starting with postgres:// or postgresql://"),
        (["--valkey", "memcached://x"], {}, "'memcached://x': not a URL starting with valkey://, valkeys://"),
        (["--valkey", "unix+cluster:///run/redis.sock"], {}, "not a URL starting with valkey://"),
        (["--valkey", "valkey+cluster:///"], {}, "'' is not host:port"),
        (["--valkey", "valkey+cluster://a:7000,,b:7001/"], {}, "'' is not host:port (nodes are separated by commas)"),
        (["--valkey", "valkey+cluster://a:x/"], {}, "'a:x' is not host:port"),
        (["--valkey", "valkey+cluster://a:70000/"], {}, "'a:70000' is not host:port"),
        (["--valkey", "valkey+cluster://a:7000/3"], {}, "a cluster has only database 0: end the URL with / (not /3)"),
        (["--valkey", "valkey+cluster://a:7000/?db=1"], {}, "option 'db' is not one chip passes to a cluster"),
        (["--valkey", "valkey+cluster://a/?ssl_ca_certs=/ca"], {}, "option 'ssl_ca_certs' is not one chip passes"),
        (["--valkey", "valkey+sentinel://a:26379/"], {}, "must end with /<service name> or /<service name>/<db>"),
        (["--valkey", "valkey+sentinel://a:26379/m/x"], {}, "must end with /<service name> or /<service name>/<db>"),
        (["--valkey", "valkey+sentinel://a/m/0/1"], {}, "must end with /<service name> or /<service name>/<db>"),
        (["--valkey", "valkey://h/0?socket_timeout=soon"], {}, "Invalid value for 'socket_timeout'"),
        ([], {"CHIP_VALKEY": "valkey+sentinel://u:hunter2@a/"}, "CHIP_VALKEY: 'valkey+sentinel://u:***@a/': "),
        (["--valkey-min-replicas", "-1"], {}, "'-1' must be 0 or more"),
        (["--valkey-min-replicas", "one"], {}, "'one' is not a whole number"),
        (["--ack-timeout", "-1"], {}, "must be greater than zero"),
        (["--log-level", "loud"], {}, "is not one of debug, info"),
        (["--log-format", "xml"], {}, "argument --log-format: 'xml' is not one of text, json"),
        ([], {"CHIP_LOG_FORMAT": "logfmt"}, "CHIP_LOG_FORMAT: 'logfmt' is not one of text, json"),
        ([], {"CHIP_SSL": "maybe"}, "CHIP_SSL: 'maybe' is not true or false"),
        (["--legacy-upgrade", "never"], {}, "argument --legacy-upgrade: 'never' is not one of auto, off"),
        ([], {"CHIP_LEGACY_UPGRADE": "on"}, "CHIP_LEGACY_UPGRADE: 'on' is not one of auto, off"),
        (["--nope"], {}, "unrecognized arguments: --nope"),
    ],
)
def test_bad_values_are_one_clear_message(argv, env, message):
    with pytest.raises(ConfigError) as e:
        parse(argv, env)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_every_setting_is_a_flag_and_a_variable(capsys):
    with pytest.raises(SystemExit) as e:
        parse(["--help"], {})
    assert e.value.code == 0
    text = capsys.readouterr().out
    for field in dataclasses.fields(Config):
        assert f"--{field.name.replace('_', '-')}" in text
        assert "CHIP_" + field.name.upper() in text.replace("\n", "").replace(" ", "")


def test_dead_letters_are_kept_30_days_or_not_at_all():
    config = parse([], {})
    assert (config.dead_letter_ttl, config.dead_letter_max, config.dead_letter_max_per_channel) == (
        30 * 86400,
        64_000,
        12_800,
    )
    assert parse(["--dead-letter-ttl", "0"], {}).dead_letter_ttl == 0
    with pytest.raises(ConfigError) as e:
        parse([], {"CHIP_DEAD_LETTER_TTL": "-1"})
    assert str(e.value) == "CHIP_DEAD_LETTER_TTL: '-1' must be 0 (off) or more"
    with pytest.raises(ConfigError):
        parse(["--dead-letter-max", "0"], {})


def test_courier_timeout_outlasts_courier_own():
    """Courier allows itself 30 s per request; giving up sooner and posting again records a message twice."""
    assert parse([], {}).courier_timeout == 40
    assert parse([], {"CHIP_COURIER_TIMEOUT": "31"}).courier_timeout == 31
    assert parse(["--courier-timeout", "45"], {"CHIP_COURIER_TIMEOUT": "31"}).courier_timeout == 45
    with pytest.raises(ConfigError) as e:
        parse(["--courier-timeout", "30"], {})
    assert str(e.value) == (
        "--courier-timeout (30) must be longer than Courier's own 30 s, "
        "or a slow Courier records a visitor's message twice"
    )


def test_the_log_format_is_text_or_json():
    assert parse(["--log-format", "JSON"], {}).log_format == "json"
    assert parse([], {"CHIP_LOG_FORMAT": "json"}).log_format == "json"
    assert parse(["--log-format", "text"], {"CHIP_LOG_FORMAT": "json"}).log_format == "text"


def test_the_upgrade_pass_is_auto_or_off():
    assert parse(["--legacy-upgrade", "OFF"], {}).legacy_upgrade == "off"
    assert parse([], {"CHIP_LEGACY_UPGRADE": "off"}).legacy_upgrade == "off"
    assert parse(["--legacy-upgrade", "auto"], {"CHIP_LEGACY_UPGRADE": "off"}).legacy_upgrade == "auto"


def test_a_json_line_keeps_a_traceback_and_its_own_keys_on_one_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.json")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("bad frame")
        except ValueError:
            logger.exception("could not serve chat=%s; level=%s message=%s ip=%s: %d open", "abc", "x", "y", "::1", 3)
    finally:
        logger.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "error" and entry["logger"] == "tests.json"
    assert entry["message"] == "could not serve chat=abc; level=x message=y ip=::1: 3 open"
    assert entry["chat"] == "abc" and entry["ip"] == "::1"  # what ends the value is not part of it
    assert "ValueError: bad frame" in entry["exception"]
    assert entry["time"].endswith("Z") and "T" in entry["time"]
