"""Settings: flags, CHIP_* variables, defaults, and one clear line for a bad value."""

import dataclasses

import pytest

from services.config import Config, ConfigError, parse


def test_defaults():
    config = parse([], {})
    assert (config.address, config.port, config.domain, config.ssl) == ("localhost", 8070, "localhost", False)
    assert config.db == "postgres://temba:temba@localhost/temba"
    assert config.valkey == "valkey://localhost:6379/5" and config.redis_url == "redis://localhost:6379/5"
    assert config.courier_url == "http://localhost" and config.storage_url == "http://localhost/media"
    assert config.ack_timeout == 15 and config.log_level == "info" and config.instance_id


def test_environment_and_flags_flag_wins():
    env = {"CHIP_PORT": "9000", "CHIP_DOMAIN": "chat.example.com", "CHIP_SSL": "true",
           "CHIP_COURIER_URL": "http://courier:8080", "CHIP_ACK_TIMEOUT": "2.5"}
    config = parse(["--port", "9001"], env)
    assert config.port == 9001 and config.domain == "chat.example.com" and config.ssl is True
    assert config.courier_url == "http://courier:8080"
    assert config.storage_url == "https://chat.example.com/media"  # follows --domain and --ssl
    assert config.ack_timeout == 2.5


@pytest.mark.parametrize("url, redis_url", [
    ("valkey://h:1/2", "redis://h:1/2"), ("valkeys://h/0", "rediss://h/0"),
    ("redis://h/3", "redis://h/3"), ("unix:///run/redis.sock", "unix:///run/redis.sock")])
def test_valkey_url_schemes(url, redis_url):
    assert parse(["--valkey", url], {}).redis_url == redis_url


@pytest.mark.parametrize("argv, env, message", [
    (["--port", "x"], {}, "argument --port: 'x' is not a number"),
    (["--port", "70000"], {}, "not a port number"),
    ([], {"CHIP_PORT": "0"}, "CHIP_PORT: '0' must be greater than zero"),
    (["--db", "mysql://x/y"], {}, "is not a URL starting with postgres:// or postgresql://"),
    (["--valkey", "memcached://x"], {}, "is not a URL starting with valkey://"),
    (["--ack-timeout", "-1"], {}, "must be greater than zero"),
    (["--log-level", "loud"], {}, "is not one of debug, info"),
    ([], {"CHIP_SSL": "maybe"}, "CHIP_SSL: 'maybe' is not true or false"),
    (["--nope"], {}, "unrecognized arguments: --nope"),
])
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


def test_courier_timeout_outlasts_courier_own():
    """Courier allows itself 30 s per request; giving up sooner and posting again records a message twice."""
    assert parse([], {}).courier_timeout == 40
    assert parse([], {"CHIP_COURIER_TIMEOUT": "31"}).courier_timeout == 31
    assert parse(["--courier-timeout", "45"], {"CHIP_COURIER_TIMEOUT": "31"}).courier_timeout == 45
    with pytest.raises(ConfigError) as e:
        parse(["--courier-timeout", "30"], {})
    assert str(e.value) == ("--courier-timeout (30) must be longer than Courier's own 30 s, "
                            "or a slow Courier records a visitor's message twice")
