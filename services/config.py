"""Configuration: one name per setting, as a flag and as a CHIP_<NAME> environment variable.

Flags win over the environment, the environment wins over the defaults. A bad value ends the
process with one line on stderr and exit status 2, like any other usage error.
"""

import argparse
import dataclasses
import ipaddress
import logging
import os
import re
import socket
import sys
from datetime import datetime, timezone
from urllib.parse import urlsplit

import dotenv
import orjson

from services.store.url import parse_store_url

VERSION = "1.0.0"

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
LEGACY_UPGRADES = ("auto", "off")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# the key=value fields of chip's log lines ("chat resumed channel=abc chat=xyz")
LOG_FIELD = re.compile(r"(?<!\S)([A-Za-z_]\w*)=(\S+)")

# Courier allows itself this long per request (its handler's context and chi's Timeout middleware)
COURIER_TIMEOUT = 30.0


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


def _store_url(value):
    try:
        parse_store_url(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{safe_url(value)!r}: {e}") from None
    return value


def _count(value):
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be 0 or more")
    return number


def _seconds_or_off(value):
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be 0 (off) or more")
    return number


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


def _one_of(choices):
    def parse(value):
        if value.lower() not in choices:
            raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(choices)}")
        return value.lower()

    return parse


def _origins(value):
    """'https://shop.example.com, https://example.org' -> the origins as browsers send them."""
    origins = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        parts = urlsplit(item)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise argparse.ArgumentTypeError(f"{item!r} is not an origin such as https://shop.example.com")
        # a browser's Origin header is scheme://host[:port] in lowercase, without a path
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def _networks(value):
    """'10.0.0.1, 192.168.0.0/16' -> the networks (a bare address is a network of one)."""
    networks = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def setting(default, parse, help: str):
    """A Config field that is also the flag --<name> (dashes for underscores) and the variable
    CHIP_<NAME>: its default, the function that reads it from text (an argparse type) and its --help text."""
    return dataclasses.field(default=default, metadata={"parse": parse, "help": help})


@dataclasses.dataclass(frozen=True)
class Config:
    """Every setting, declared once: the parser, the environment and --env-file all come from these fields."""

    address: str = setting("localhost", str, "address to listen on")
    port: int = setting(8070, _port, "port to listen on")
    domain: str = setting("localhost", str, "public domain of this server; the default Courier and storage URLs use it")
    ssl: bool = setting(False, _bool, "the public URLs use https (default off)")
    db: str = setting(
        "postgres://temba:temba@localhost/temba", _url(["postgres", "postgresql"]), "RapidPro's PostgreSQL database URL"
    )
    valkey: str = setting(
        "valkey://localhost:6379/5",
        _store_url,
        "Valkey/Redis URL for outboxes and delivery state: one server (valkey://host:port/db, "
        "redis://, unix:///path), a cluster (valkey+cluster://host:port,host:port/, any seed "
        "nodes) or Sentinel (valkey+sentinel://host:port,host:port/<service>/<db>); "
        "valkeys:// and valkeys+... for TLS; user:pass@ before the host(s)",
    )
    valkey_min_replicas: int = setting(
        0,
        _count,
        "replicas that must confirm a write before chip acknowledges it (0: none, the fastest; but a "
        "failover can then lose what was acknowledged in the moment before it; more: a write that fewer "
        "replicas confirm within 2 s is answered 503 to Courier (/wc/send) or unavailable to the widget (send_msg), "
        "which retry)",
    )
    courier_url: str = setting("", _url(["http", "https"]), "Courier's base URL (default: http(s)://<domain>)")
    courier_timeout: float = setting(
        40.0,
        _positive(float),
        "seconds chip waits for Courier's answer before posting again; more than "
        f"Courier's own {COURIER_TIMEOUT:g} s, or a slow Courier records a "
        "visitor's message twice",
    )
    storage_url: str = setting(
        "",
        _url(["http", "https"]),
        "URL prefixed to users' avatar paths: RapidPro's STORAGE_URL (default: "
        "http(s)://<domain>/media, where chip's own nginx answers 404)",
    )
    instance_id: str = setting("", str, "name of this process in its logs (default: the hostname)")
    ack_timeout: float = setting(15.0, _positive(float), "seconds before an unacknowledged message is pushed again")
    log_level: str = setting("info", _one_of(LOG_LEVELS), "one of " + ", ".join(LOG_LEVELS))
    log_format: str = setting(
        "text",
        _one_of(LOG_FORMATS),
        "text (time level logger: message) or json (one object "
        "a line: time, level, logger, message, and each key=value of the message as its own key)",
    )
    sentry_dsn: str = setting("", str, "report errors to this Sentry DSN (optional)")
    db_pool_size: int = setting(8, _positive(int), "PostgreSQL connections (and worker threads) per process")
    inbound_expiry: float = setting(
        86400.0,
        _positive(float),
        "seconds a visitor's event is kept for Courier while Courier fails, before it is given up",
    )
    status_expiry: float = setting(
        30.0,
        _positive(float),
        "seconds a msg_status (an ack's report) is retried while "
        "Courier refuses it, before it is given up so that the visitor's later "
        "messages go on",
    )
    max_attempts: int = setting(
        10,
        _positive(int),
        "pushes of an unacknowledged message to one socket before waiting for the visitor's next visit",
    )
    msg_expiry: float = setting(
        7 * 86400.0,
        _positive(float),
        "seconds an outgoing message may wait in an outbox "
        "before it is emailed (with --smtp-url and a visitor email) or failed",
    )
    smtp_url: str = setting(
        "",
        _url(["smtp", "smtps"]),
        "email stale messages through this server: smtp://user:pass@host:587/?from=chat@example.com (optional)",
    )
    ping_interval: float = setting(30.0, _positive(float), "seconds between WebSocket pings")
    ping_timeout: float = setting(
        30.0, _positive(float), "seconds without a pong before a socket is closed (at most --ping-interval)"
    )
    start_timeout: float = setting(30.0, _positive(float), "seconds a socket may stay open without start_chat")
    max_write_buffer: int = setting(
        1024 * 1024,
        _positive(int),
        "bytes of messages queued for a socket before "
        "chip waits for it to read; one that reads nothing for --ping-timeout is "
        "closed",
    )
    allowed_origins: tuple[str, ...] = setting(
        (),
        _origins,
        "comma-separated origins whose pages may open the "
        "widget's socket, such as https://shop.example.com,"
        "https://example.org (default: any); others get 403",
    )
    max_message_bytes: int = setting(
        64 * 1024, _positive(int), "largest frame a widget may send; a larger one closes the socket with 1009"
    )
    max_text_length: int = setting(
        4096, _positive(int), "most characters in one send_msg text; more is refused with too_large"
    )
    command_rate: float = setting(
        10.0, _positive(float), "commands per second a socket may send on average; more are refused with rate_limited"
    )
    command_burst: int = setting(
        120, _positive(int), "commands a socket may send at once before --command-rate applies"
    )
    new_chats_per_ip: int = setting(
        10,
        _positive(int),
        "new chats one client IP may start on one channel per --new-chats-window (shared by all processes)",
    )
    new_chats_window: int = setting(60, _positive(int), "seconds over which --new-chats-per-ip is counted")
    max_sockets_per_ip: int = setting(
        50, _positive(int), "open sockets one client IP may hold on this process; more get 429"
    )
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = setting(
        (),
        _networks,
        "comma-separated IPs/CIDRs of proxies whose X-Forwarded-For/X-Real-IP name the client (default: none)",
    )
    metrics_port: int = setting(0, _port_or_off, "serve Prometheus /metrics on localhost at this port (0: off)")
    public_version: bool = setting(
        False, _bool, "GET / names chip's version (default off; /version on the metrics port always does)"
    )
    env_file: str = setting(
        "", str, "read CHIP_* settings from this file of NAME=value lines; the environment and flags win over it"
    )
    max_connections_per_ip: int = setting(
        100,
        _positive(int),
        "HTTP connections one client IP (IPv6: its /64) may hold open on this process before its sockets are "
        "upgraded; more are answered 429 and closed (--trusted-proxies are not counted)",
    )
    header_timeout: float = setting(
        10.0,
        _positive(float),
        "seconds a connection may take to send a request's "
        "headers, counted from connect or from the previous answer (so also the "
        "keep-alive idle limit); then it is closed",
    )
    body_timeout: float = setting(
        30.0, _positive(float), "seconds a request may take to send its body; then it is closed"
    )
    max_body_bytes: int = setting(
        256 * 1024, _positive(int), "largest /wc/send body; a larger one gets 413 without being read"
    )
    max_list_items: int = setting(
        10, _positive(int), "most attachments, and most quick replies, in one /wc/send message; more get 400"
    )
    max_outbox: int = setting(
        1000, _positive(int), "most messages waiting for one chat's visitor; /wc/send past it gets 413"
    )
    widget: bool = setting(
        True, _bool, "serve the chat widget at /wc/widget.js (on; off for a chip whose sites bring their own)"
    )
    dead_letter_ttl: float = setting(
        30 * 86400.0,
        _seconds_or_off,
        "seconds chip keeps a dead letter (an event for Courier or an outgoing message it gave up) for "
        "`chip.py admin dead-letters` to show and replay; 0 keeps none (only the error line and the counter)",
    )
    dead_letter_max: int = setting(
        64_000,
        _positive(int),
        "most dead letters kept; past it the oldest are dropped (kept per shard: a 128th of it in each)",
    )
    dead_letter_max_per_channel: int = setting(
        12_800,
        _positive(int),
        "most dead letters kept of one channel; past it that channel's "
        "oldest are dropped (kept per shard: a 128th of it in each)",
    )
    legacy_upgrade: str = setting(
        "auto",
        _one_of(LEGACY_UPGRADES),
        "auto: move what a release before the sharded key layout left in Redis, at start and every "
        "minute until that layout has stayed empty for an hour (remembered in Redis; never on a cluster); "
        "off: never look for it (a deployment that never ran that release, or once its upgrade is over)",
    )

    def __post_init__(self):
        scheme = "https" if self.ssl else "http"
        if not self.courier_url:
            object.__setattr__(self, "courier_url", f"{scheme}://{self.domain}")
        if not self.storage_url:
            object.__setattr__(self, "storage_url", f"{scheme}://{self.domain}/media")
        if not self.instance_id:
            object.__setattr__(self, "instance_id", socket.gethostname())


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chip.py",
        description="Chip: webchat server between chat widgets and RapidPro's Courier. "
        "`chip.py admin --help`: the operator's commands (status, chat, dead-letters).",
        epilog="Every setting can also be given as an environment variable CHIP_<NAME>, "
        "for example CHIP_DB or CHIP_COURIER_URL, or written in --env-file; a flag wins over the "
        "environment, which wins over the file.",
    )
    add_settings(parser)
    parser.add_argument("--version", action="version", version=f"chip {VERSION}")
    return parser


def add_settings(parser: argparse.ArgumentParser, shown=None):
    """A flag per Config field, none with a default (what is not given comes from the environment,
    the file or the field). `shown`: the settings whose help is printed (default all); the others
    are taken but not listed."""
    for field in dataclasses.fields(Config):
        attr, default, kind, text = field.name, field.default, field.metadata["parse"], field.metadata["help"]
        name = attr.replace("_", "-")
        env = "CHIP_" + attr.upper()
        shown_default = f" [env {env}; default: {default}]" if default not in ("", None, ()) else f" [env {env}]"
        text = text + shown_default if shown is None or attr in shown else argparse.SUPPRESS
        if kind is _bool:
            parser.add_argument(
                f"--{name}",
                dest=attr,
                type=_bool,
                nargs="?",
                const=True,
                default=argparse.SUPPRESS,
                metavar="BOOL",
                help=text,
            )
        else:
            parser.add_argument(
                f"--{name}", dest=attr, type=kind, default=argparse.SUPPRESS, metavar=attr.upper(), help=text
            )


def parse(argv=None, environ=None) -> Config:
    """Build the Config from flags and CHIP_* variables; raises ConfigError on a bad value."""
    return from_flags(vars(_parser().parse_args(argv)), environ)


def from_flags(flags: dict, environ=None) -> Config:
    """The Config of the settings given as flags (`flags`: Config field -> value, as add_settings'
    flags parse them), the environment and --env-file; raises ConfigError on a bad value."""
    environ = os.environ if environ is None else environ
    env_file = flags.get("env_file") or environ.get("CHIP_ENV_FILE", "")
    if env_file:
        environ = {**read_env_file(env_file), **environ}
    values = {}
    for field in dataclasses.fields(Config):
        attr, kind = field.name, field.metadata["parse"]
        env = "CHIP_" + attr.upper()
        if env in environ:
            try:
                values[attr] = kind(environ[env])
            except argparse.ArgumentTypeError as e:
                raise ConfigError(f"{env}: {e}") from None
    values.update(flags)
    config = Config(**values)
    if config.courier_timeout <= COURIER_TIMEOUT:
        raise ConfigError(
            f"--courier-timeout ({config.courier_timeout:g}) must be longer than Courier's own "
            f"{COURIER_TIMEOUT:g} s, or a slow Courier records a visitor's message twice"
        )
    if config.ping_timeout > config.ping_interval:
        raise ConfigError(
            f"--ping-timeout ({config.ping_timeout:g}) cannot be longer than --ping-interval ({config.ping_interval:g})"
        )
    return config


def read_env_file(path: str) -> dict[str, str]:
    """The CHIP_* settings of an environment file (NAME=value lines, # comments, as systemd's
    EnvironmentFile reads them); ConfigError if it cannot be read or names an unknown setting."""
    try:
        with open(path, encoding="utf-8") as stream:
            values = dotenv.dotenv_values(stream=stream, interpolate=False)
    except OSError as e:
        raise ConfigError(f"--env-file {path}: {e.strerror}") from None
    known = {"CHIP_" + field.name.upper() for field in dataclasses.fields(Config)}
    for name in values:
        if name not in known:
            raise ConfigError(f"--env-file {path}: {name} is not a chip setting (CHIP_<NAME>; see --help)")
    return {name: value or "" for name, value in values.items()}


def load(argv=None) -> Config:
    """parse() for a command line: a bad value is one line on stderr and exit status 2."""
    try:
        return parse(argv)
    except ConfigError as e:
        fail(str(e))


def safe_url(url: str) -> str:
    """A URL fit for a log line or an error: without its password."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def fail(message: str):
    print(f"chip: error: {message}", file=sys.stderr)
    sys.exit(2)


def setup_logging(config: Config):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(handlers=[handler])
    set_log_level(config.log_level)


class JsonFormatter(logging.Formatter):
    """--log-format json: one object a line, with time (UTC), level, logger and message, and each
    key=value field of the message as its own key (a string: a field keeps one type in a log store);
    a traceback is under `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        created = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        entry = {
            "time": created.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        for key, value in LOG_FIELD.findall(message):
            # the first of a key wins, and never over the four above; "ip=1.2.3.4: ..." ends at the colon
            entry.setdefault(key, value.rstrip(",;:"))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry).decode()


def set_log_level(level: str):
    logging.root.setLevel(getattr(logging, level.upper()))
    # access lines for every WebSocket upgrade and Courier call would drown the notable events
    logging.getLogger("tornado.access").setLevel(max(logging.WARNING, logging.root.level))
