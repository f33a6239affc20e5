"""The limits' settings and the client-address rule, without a server."""

import ipaddress

import pytest
import redis.asyncio as aioredis

from services.config import Config, ConfigError, parse
from services.errors import RateLimited
from services.limits import CommandBucket, Limits, client_key
from services.store.scripts import Scripts


def limits(**config) -> Limits:
    # the Redis client connects only when the new-chat counter is used, which these tests do not do
    return Limits(Config(**config), Scripts(aioredis.Redis()))


def test_every_limit_is_a_flag_and_an_environment_variable():
    env = {
        "CHIP_ALLOWED_ORIGINS": "https://Shop.example.com/, https://example.org",
        "CHIP_MAX_MESSAGE_BYTES": "1000",
        "CHIP_MAX_TEXT_LENGTH": "50",
        "CHIP_COMMAND_RATE": "2.5",
        "CHIP_COMMAND_BURST": "7",
        "CHIP_NEW_CHATS_PER_IP": "3",
        "CHIP_NEW_CHATS_WINDOW": "30",
        "CHIP_MAX_SOCKETS_PER_IP": "4",
        "CHIP_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16, ::1",
    }
    config = parse([], environ=env)
    assert config.allowed_origins == ("https://shop.example.com", "https://example.org")
    assert (
        config.max_message_bytes,
        config.max_text_length,
        config.command_rate,
        config.command_burst,
        config.new_chats_per_ip,
        config.new_chats_window,
        config.max_sockets_per_ip,
    ) == (1000, 50, 2.5, 7, 3, 30, 4)
    assert config.trusted_proxies == (
        ipaddress.ip_network("10.0.0.1/32"),
        ipaddress.ip_network("192.168.0.0/16"),
        ipaddress.ip_network("::1/128"),
    )
    assert parse(["--max-sockets-per-ip", "9"], environ=env).max_sockets_per_ip == 9


def test_defaults():
    config = parse([], environ={})
    assert config.allowed_origins == () and config.trusted_proxies == ()
    assert (config.max_message_bytes, config.max_text_length, config.new_chats_per_ip, config.new_chats_window) == (
        65536,
        4096,
        10,
        60,
    )


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--allowed-origins", "shop.example.com"),
        ("--allowed-origins", "https://shop.example.com/widget"),
        ("--allowed-origins", "ftp://example.org"),
        ("--trusted-proxies", "10.0.0.300"),
        ("--trusted-proxies", "proxy.internal"),
        ("--command-rate", "0"),
        ("--max-message-bytes", "-1"),
    ],
)
def test_bad_values_are_refused(flag, value):
    with pytest.raises(ConfigError):
        parse([flag, value], environ={})


PROXY = "10.0.0.5"


@pytest.mark.parametrize(
    "peer, forwarded_for, real_ip, client",
    [
        ("203.0.113.9", "198.51.100.1", "198.51.100.2", "203.0.113.9"),  # untrusted peer: headers ignored
        (PROXY, None, None, PROXY),  # a trusted proxy without headers
        (PROXY, "198.51.100.1", None, "198.51.100.1"),
        (PROXY, "1.1.1.1, 198.51.100.1", None, "198.51.100.1"),  # the left end is the client's to write
        (PROXY, "198.51.100.1, 10.0.0.7", None, "198.51.100.1"),  # a chain of trusted proxies
        (PROXY, "10.0.0.8, 10.0.0.7", None, "10.0.0.8"),  # all trusted: the farthest
        (PROXY, "198.51.100.1, junk", None, PROXY),  # garbage: stop at the last trusted hop
        (PROXY, "junk, 10.0.0.7", None, "10.0.0.7"),
        (PROXY, None, "198.51.100.3", "198.51.100.3"),
        (PROXY, None, "not an address", PROXY),
        (PROXY, "2001:db8::1", None, "2001:db8::1"),
    ],
)
def test_client_ip_believes_only_trusted_proxies(peer, forwarded_for, real_ip, client):
    rule = limits(trusted_proxies=parse(["--trusted-proxies", "10.0.0.0/24"], environ={}).trusted_proxies)
    assert rule.client_ip(peer, forwarded_for, real_ip) == client


def test_bucket_allows_a_burst_then_the_rate():
    bucket = CommandBucket(rate=1, burst=2)
    bucket.take()
    bucket.take()
    bucket.stamp -= 1.5  # 1.5 s at one a second refills one and a half tokens
    bucket.take()
    with pytest.raises(RateLimited):
        bucket.take()


def test_socket_slots_are_released_when_the_block_ends_even_by_an_error():
    rule = limits(max_sockets_per_ip=1)
    with pytest.raises(ValueError):
        with rule.socket("198.51.100.1"):
            raise ValueError
    with rule.socket("198.51.100.1"):
        with pytest.raises(RateLimited):
            with rule.socket("198.51.100.1"):
                pass
        with rule.socket("198.51.100.2"):
            pass


@pytest.mark.parametrize(
    "ip, key",
    [
        ("198.51.100.1", "198.51.100.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.1", "198.51.100.1"),  # an IPv4 client on a dual-stack socket
        ("::1", "::/64"),
    ],
)
def test_ipv4_clients_are_counted_by_address_and_ipv6_ones_by_their_64(ip, key):
    assert client_key(ip) == key


def test_the_hardening_limits_are_settings_with_defaults():
    config = parse([], environ={})
    assert (
        config.max_connections_per_ip,
        config.header_timeout,
        config.body_timeout,
        config.max_body_bytes,
        config.max_list_items,
        config.max_outbox,
    ) == (100, 10.0, 30.0, 256 * 1024, 10, 1000)
    env = {
        "CHIP_MAX_CONNECTIONS_PER_IP": "7",
        "CHIP_HEADER_TIMEOUT": "2.5",
        "CHIP_BODY_TIMEOUT": "4",
        "CHIP_MAX_BODY_BYTES": "5000",
        "CHIP_MAX_LIST_ITEMS": "3",
        "CHIP_MAX_OUTBOX": "9",
    }
    config = parse(["--max-outbox", "11"], environ=env)
    assert (
        config.max_connections_per_ip,
        config.header_timeout,
        config.body_timeout,
        config.max_body_bytes,
        config.max_list_items,
        config.max_outbox,
    ) == (7, 2.5, 4.0, 5000, 3, 11)
