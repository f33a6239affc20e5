"""What one client may do to a public endpoint: which pages may open a socket, who the client is
behind a proxy, and how many connections, sockets, commands, characters and new chats it gets.

A client is an IPv4 address, or an IPv6 /64: one subscriber is usually given a whole /64 and can
pick any address in it, so counting IPv6 addresses one by one would limit no one."""

import contextlib
import ipaddress
import logging
import time

from services.config import Config
from services.errors import Forbidden, RateLimited, TooLarge
from services.store import keys
from services.store.client import redis_errors
from services.store.scripts import Scripts

logger = logging.getLogger(__name__)


# Count one new chat in the client's current window; the window starts with its first chat, so
# the key expires with it. Returns [count so far, seconds left in the window].
def _address(text: str):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_key(ip: str) -> str:
    """What the per-client limits count: the IPv4 address (an IPv4-mapped IPv6 one included), or the
    IPv6 address's /64 network; anything that is no address (a Unix socket's peer) as it is."""
    address = _address(ip)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address) if address is not None else ip


class PerClient:
    """How many of something each client holds, against a cap; held counts only (no history)."""

    __slots__ = ("cap", "_held")

    def __init__(self, cap: int):
        self.cap = cap
        self._held: dict[str, int] = {}

    def take(self, key: str) -> bool:
        """Count one more for the client; False (and nothing counted) when it already holds the cap."""
        held = self._held.get(key, 0)
        if held >= self.cap:
            return False
        self._held[key] = held + 1
        return True

    def give(self, key: str):
        left = self._held[key] - 1
        if left:
            self._held[key] = left
        else:
            del self._held[key]


class CommandBucket:
    """One socket's token bucket: `burst` commands at once, then `rate` a second on average."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self):
        """Spend one token, or raise RateLimited when there is none left."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            raise RateLimited(f"more than {self.burst} commands at once or {self.rate:g} a second; slow down")
        self.tokens -= 1


class Limits:
    def __init__(self, config: Config, scripts: Scripts):
        self.allowed_origins = frozenset(config.allowed_origins)
        self.trusted_proxies = config.trusted_proxies
        self.max_text_length = config.max_text_length
        self.command_rate = config.command_rate
        self.command_burst = config.command_burst
        self.new_chats_per_ip = config.new_chats_per_ip
        self.new_chats_window = config.new_chats_window
        self.max_sockets_per_ip = config.max_sockets_per_ip
        self.max_connections_per_ip = config.max_connections_per_ip
        self.max_outbox = config.max_outbox
        self._sockets = PerClient(config.max_sockets_per_ip)
        self._connections = PerClient(config.max_connections_per_ip)
        self._count_new_chat = scripts.load("limits_new_chat")

    def check_origin(self, origin: str | None):
        """Raise Forbidden unless the page's origin is allowed. Without a configured list any origin
        is, since the widget is embedded on customers' sites. A request without an Origin header
        comes from no browser (every browser sends one with a WebSocket upgrade); such a client can
        write any header it likes, so refusing it would protect nothing."""
        if not self.allowed_origins or origin is None:
            return
        if origin.strip().lower().rstrip("/") not in self.allowed_origins:
            raise Forbidden("origin not allowed")

    def client_ip(self, peer: str, forwarded_for: str | None, real_ip: str | None) -> str:
        """The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
        address in X-Forwarded-For that no trusted proxy added (each proxy appends the address it
        saw, so only the right end can be believed), or X-Real-IP when there is no X-Forwarded-For."""
        if not self._trusted(_address(peer)):
            return peer
        if forwarded_for:
            nearest = peer
            for hop in reversed(forwarded_for.split(",")):
                address = _address(hop)
                if address is None:
                    return nearest  # garbage written by someone untrusted: stop believing here
                if not self._trusted(address):
                    return str(address)
                nearest = str(address)
            return nearest
        address = _address(real_ip) if real_ip else None
        return str(address) if address is not None else peer

    def _trusted(self, address) -> bool:
        return address is not None and any(address in network for network in self.trusted_proxies)

    @contextlib.contextmanager
    def socket(self, client_ip: str):
        """Hold one of the client's sockets on this process while the block runs; RateLimited when it
        already holds --max-sockets-per-ip. Counted per process: a crashed process's count dies with it."""
        key = client_key(client_ip)
        if not self._sockets.take(key):
            logger.info("socket refused ip=%s: %d already open", key, self.max_sockets_per_ip)
            raise RateLimited(f"more than {self.max_sockets_per_ip} open sockets from this address")
        try:
            yield
        finally:
            self._sockets.give(key)

    def open_connection(self, peer: str) -> str | None:
        """Count an HTTP connection from `peer` (the TCP peer: no header has been read yet) until
        close_connection(the key returned); RateLimited past --max-connections-per-ip. Connections
        from --trusted-proxies are not counted (None): nginx holds many for many visitors."""
        if self._trusted(_address(peer)):
            return None
        key = client_key(peer)
        if not self._connections.take(key):
            raise RateLimited(f"more than {self.max_connections_per_ip} open connections from this address")
        return key

    def close_connection(self, key: str | None):
        if key is not None:
            self._connections.give(key)

    def command_bucket(self) -> CommandBucket:
        return CommandBucket(self.command_rate, self.command_burst)

    def check_text(self, text: str):
        if len(text) > self.max_text_length:
            raise TooLarge(f"text is longer than {self.max_text_length} characters")

    @redis_errors("counting new chats")
    async def count_new_chat(self, channel_uuid: str, client_ip: str):
        """Count a new chat for the client on the channel, in Redis so that every process shares the
        count; RateLimited past --new-chats-per-ip in the window."""
        count, left = await self._count_new_chat(
            counter=keys.new_chats(channel_uuid, client_key(client_ip)), window=self.new_chats_window
        )
        if count > self.new_chats_per_ip:
            logger.info("new chat refused channel=%s ip=%s: %d in the window", channel_uuid, client_ip, count)
            raise RateLimited(
                f"more than {self.new_chats_per_ip} new chats from this address in "
                f"{self.new_chats_window} s; try again in {max(left, 1)} s"
            )
