"""The retry policy: one object, made from the settings, that every retry loop waits by."""

import chip
from services.backoff import Backoff, RetryPolicy
from services.config import Config


def test_a_backoff_doubles_from_its_base_up_to_its_cap_with_jitter():
    backoff = Backoff(1.0, 5.0)
    # the 2000th try of a chat that has failed for days waits the cap too, with no float overflow
    for attempt, full in [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (20, 5.0), (2000, 5.0)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 1  # jittered: chats failing together do not retry together


def test_the_policy_comes_from_the_settings():
    policy = RetryPolicy.from_config(Config(ack_timeout=2.5))
    assert policy.repush == Backoff(2.5, 300.0)  # an unacked message waits --ack-timeout, then longer
    assert policy.courier == Backoff(1.0, 300.0)
    assert RetryPolicy.from_config(Config(), tick=0.05).tick == 0.05


async def test_build_hands_one_policy_to_every_retry_loop(pg_url, redis_url):
    config = Config(db=pg_url, valkey=redis_url)
    policy = RetryPolicy.from_config(config, courier=Backoff(0.05, 0.2))
    services = await chip.build(config, policy)
    try:
        assert services.delivery.retry is policy and services.courier_queue.retry is policy
        assert services.readiness.retry is policy.stores
    finally:
        services.db.close()
        await services.redis.aclose()
    defaults = await chip.build(config)
    try:
        assert defaults.delivery.retry == RetryPolicy.from_config(config)
    finally:
        defaults.db.close()
        await defaults.redis.aclose()
