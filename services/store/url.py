"""The --valkey URL: one server, a Redis Cluster, or a master that Sentinel names.

    valkey://[user:pass@]host[:port][/db]                  one server (also redis://, and valkeys://
    unix:///path/to/socket[?db=N]                          or rediss:// for TLS)
    valkey+cluster://[user:pass@]host:port,host:port/      a cluster, from any of these seed nodes
    valkey+sentinel://[user:pass@]host:port,host:port/service[/db]
                                                           the master of `service`, as these sentinels
                                                           name it (the password is given to both)

`redis+`, `rediss+` and `valkeys+` work as `valkey+` does, the last two with TLS. Query options are
redis-py's (socket_timeout=2, ssl_ca_certs=/etc/ca.pem, ...); for a cluster or a sentinel only
those in CLUSTER_OPTIONS, which every client of theirs takes.
"""

import dataclasses
from urllib.parse import urlsplit

from redis.asyncio.connection import parse_url

# what the single-server schemes are called in redis-py
SERVER_SCHEMES = {"valkey": "redis", "valkeys": "rediss", "redis": "redis", "rediss": "rediss", "unix": "unix"}
TLS = ("valkeys", "rediss")
DEFAULT_PORTS = {"cluster": 6379, "sentinel": 26379}

CLUSTER_OPTIONS = (
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "health_check_interval",
    "max_connections",
    "client_name",
    "protocol",
)
TLS_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")

FORMS = (
    "valkey://, valkeys://, redis://, rediss://, unix://, valkey+cluster://host:port,host:port/ or "
    "valkey+sentinel://host:port,host:port/service/db"
)


@dataclasses.dataclass(frozen=True)
class StoreURL:
    """What a --valkey URL names: kind is "server", "cluster" or "sentinel"."""

    kind: str
    url: str = ""  # a server's URL as redis-py reads it (valkey:// is redis:// by another name)
    nodes: tuple[tuple[str, int], ...] = ()  # a cluster's seed nodes, or the sentinels
    service: str = ""  # the name the sentinels know the master by
    db: int = 0
    tls: bool = False
    options: dict = dataclasses.field(default_factory=dict)  # username, password and the query's options


def parse_store_url(value: str) -> StoreURL:
    """The StoreURL of `value`; ValueError if chip cannot use it, a one-line message naming the problem
    but not the URL (which may hold a password)."""
    parts = urlsplit(value)
    scheme, _, topology = parts.scheme.partition("+")
    if not topology and scheme in SERVER_SCHEMES and (parts.netloc or parts.path):
        url = SERVER_SCHEMES[scheme] + value[len(scheme) :]
        return StoreURL("server", url=url, options=parse_url(url))
    if topology not in DEFAULT_PORTS or scheme not in SERVER_SCHEMES or scheme == "unix":
        raise ValueError(f"not a URL starting with {FORMS}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    tls = scheme in TLS
    nodes = tuple(_node(item.strip(), DEFAULT_PORTS[topology]) for item in hosts.split(","))
    path = [segment for segment in parts.path.split("/") if segment]
    options = parse_url(f"{'rediss' if tls else 'redis'}://{userinfo}@/?{parts.query}")
    allowed = CLUSTER_OPTIONS + (TLS_OPTIONS if tls else ())
    for name in options.keys() - {"username", "password", "connection_class"}:
        if name not in allowed:
            raise ValueError(f"option {name!r} is not one chip passes to a {topology} (it takes {', '.join(allowed)})")
    options.pop("connection_class", None)  # TLS is `tls`: each kind of client has its own classes for it
    if topology == "cluster":
        if path not in ([], ["0"]):
            raise ValueError(f"a cluster has only database 0: end the URL with / (not /{'/'.join(path)})")
        return StoreURL("cluster", nodes=nodes, tls=tls, options=options)
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(
            "the URL must end with /<service name> or /<service name>/<db> "
            "(valkey+sentinel://host:port,host:port/mymaster/0)"
        )
    return StoreURL(
        "sentinel", nodes=nodes, service=path[0], db=int(path[1]) if len(path) == 2 else 0, tls=tls, options=options
    )


def _node(item: str, default_port: int) -> tuple[str, int]:
    try:
        parts = urlsplit("//" + item)
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, or out of range
        host = port = None
    else:
        port = default_port if port is None and not item.endswith(":") else port
    if not host or not port:
        raise ValueError(f"{item!r} is not host:port (nodes are separated by commas)")
    return host, port
