"""Configuration: one name per setting, as a flag and as a CHIP_<NAME> environment variable.

Flags win over the environment, the environment wins over the defaults. A bad value ends the
process with one line on stderr and exit status 2, like any other usage error.
"""

import argparse
import dataclasses
import logging
import os
import socket
import sys
from urllib.parse import urlsplit

VERSION = "1.0.0"

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclasses.dataclass(frozen=True)
class Config:
    address: str = "localhost"
    port: int = 8070
    domain: str = "localhost"
    ssl: bool = False
    db: str = "postgres://temba:temba@localhost/temba"
    valkey: str = "valkey://localhost:6379/5"
    courier_url: str = ""
    storage_url: str = ""
    instance_id: str = ""
    ack_timeout: float = 15.0
    log_level: str = "info"
    sentry_dsn: str = ""
    db_pool_size: int = 8
    metrics_port: int = 0

    def __post_init__(self):
        scheme = "https" if self.ssl else "http"
        if not self.courier_url:
            object.__setattr__(self, "courier_url", f"{scheme}://{self.domain}")
        if not self.storage_url:
            object.__setattr__(self, "storage_url", f"{scheme}://{self.domain}/media")
        if not self.instance_id:
            object.__setattr__(self, "instance_id", socket.gethostname())

    @property
    def redis_url(self) -> str:
        """The --valkey URL in the form redis-py understands (valkey:// is redis:// by another name)."""
        if self.valkey.startswith("valkeys://"):
            return "rediss://" + self.valkey[len("valkeys://"):]
        if self.valkey.startswith("valkey://"):
            return "redis://" + self.valkey[len("valkey://"):]
        return self.valkey


class ConfigError(ValueError):
    """A setting has a value chip cannot use."""


def _url(schemes):
    def parse(value):
        parts = urlsplit(value)
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
        return value
    return parse


def _positive(kind):
    def parse(value):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"{value!r} must be greater than zero")
        return number
    parse.__name__ = kind.__name__
    return parse


def _port(value):
    number = _positive(int)(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1-65535)")
    return number


def _bool(value):
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not true or false")


def _port_or_off(value):
    if str(value).strip() in ("", "0"):
        return 0
    return _port(value)


def _level(value):
    if value.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return value.lower()


# (name, type, help). The flag is --name, the variable CHIP_NAME (dashes as underscores).
SETTINGS = [
    ("address", str, "address to listen on"),
    ("port", _port, "port to listen on"),
    ("domain", str, "public domain of this server; the default Courier and storage URLs use it"),
    ("ssl", _bool, "the public URLs use https (default off)"),
    ("db", _url(["postgres", "postgresql"]), "RapidPro's PostgreSQL database URL"),
    ("valkey", _url(["valkey", "valkeys", "redis", "rediss", "unix"]),
     "Valkey/Redis URL for outboxes and delivery state (valkey://, redis:// or unix://)"),
    ("courier-url", _url(["http", "https"]), "Courier's base URL (default: http(s)://<domain>)"),
    ("storage-url", _url(["http", "https"]),
     "URL prefixed to users' avatar paths (default: http(s)://<domain>/media)"),
    ("instance-id", str, "name of this process in logs and in Redis (default: the hostname)"),
    ("ack-timeout", _positive(float), "seconds before an unacknowledged message is pushed again"),
    ("log-level", _level, "one of " + ", ".join(LOG_LEVELS)),
    ("sentry-dsn", str, "report errors to this Sentry DSN (optional)"),
    ("db-pool-size", _positive(int), "PostgreSQL connections (and worker threads) per process"),
    ("metrics-port", _port_or_off, "serve Prometheus /metrics on localhost at this port (0: off)"),
]


_DEFAULTS = {field.name: field.default for field in dataclasses.fields(Config)}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chip.py",
        description="Chip: webchat server between chat widgets and RapidPro's Courier.",
        epilog="Every setting can also be given as an environment variable CHIP_<NAME>, "
               "for example CHIP_DB or CHIP_COURIER_URL; a flag wins over the environment.",
    )
    for name, kind, text in SETTINGS:
        attr = name.replace("-", "_")
        default = _DEFAULTS[attr]
        env = "CHIP_" + attr.upper()
        shown = f" [env {env}; default: {default}]" if default not in ("", None) else f" [env {env}]"
        if kind is _bool:
            parser.add_argument(f"--{name}", dest=attr, type=_bool, nargs="?", const=True,
                                default=argparse.SUPPRESS, metavar="BOOL", help=text + shown)
        else:
            parser.add_argument(f"--{name}", dest=attr, type=kind, default=argparse.SUPPRESS,
                                metavar=attr.upper(), help=text + shown)
    parser.add_argument("--version", action="version", version=f"chip {VERSION}")
    return parser


def parse(argv=None, environ=None) -> Config:
    """Build the Config from flags and CHIP_* variables; raises ConfigError on a bad value."""
    environ = os.environ if environ is None else environ
    values = {}
    kinds = {name.replace("-", "_"): kind for name, kind, _ in SETTINGS}
    for attr, kind in kinds.items():
        env = "CHIP_" + attr.upper()
        if env in environ:
            try:
                values[attr] = kind(environ[env])
            except argparse.ArgumentTypeError as e:
                raise ConfigError(f"{env}: {e}") from None
    flags = vars(_parser().parse_args(argv))
    values.update(flags)
    return Config(**values)


def load(argv=None) -> Config:
    """parse() for a command line: a bad value is one line on stderr and exit status 2."""
    try:
        return parse(argv)
    except ConfigError as e:
        fail(str(e))


def fail(message: str):
    print(f"chip: error: {message}", file=sys.stderr)
    sys.exit(2)


def setup_logging(config: Config):
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # access lines for every WebSocket upgrade and Courier call would drown the notable events
    logging.getLogger("tornado.access").setLevel(max(logging.WARNING, logging.root.level))
