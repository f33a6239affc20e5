"""The retry policy: how long every retry loop of chip waits before trying again.

One RetryPolicy, made from Config by chip.build and handed to each service that retries or looks
again: delivery's pushes of unacknowledged messages and its pub/sub reconnects, the Courier queue's
posts and due loop, the sweep for stale messages, the upgrade pass and start-up's waits for the
stores. Every retry waits a capped exponential backoff with jitter.
"""

import dataclasses

from redis.backoff import EqualJitterBackoff

CAP = 300.0  # most seconds between two tries of a message or of a Courier post


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Doubling from `base` seconds up to `cap`, with redis-py's equal jitter: half of each wait
    fixed, half random, so that many chats failing together do not retry together."""

    base: float
    cap: float
    _jitter: EqualJitterBackoff = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_jitter", EqualJitterBackoff(cap=self.cap, base=self.base))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try number `attempt` + 1, in [half, full] of min(cap, base * 2 **
        (attempt - 1)): the first retry waits about `base`."""
        return self._jitter.compute(max(0, attempt - 1))


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    repush: Backoff = Backoff(15.0, CAP)  # a message a socket has not acknowledged (from --ack-timeout)
    courier: Backoff = Backoff(1.0, CAP)  # events Courier did not take
    reconnect: Backoff = Backoff(0.1, 5.0)  # the pub/sub connection to Redis, lost or refused
    stores: Backoff = Backoff(0.5, 5.0)  # the database and Redis at start; a store back is seen within 5 s
    tick: float = 1.0  # seconds between two looks of the due loops (delivery's, Courier's)
    sweep: float = 60.0  # seconds between two sweeps for messages past --msg-expiry
    legacy: float = 60.0  # seconds between two looks for the earlier key layout (services/store/legacy.py)

    @classmethod
    def from_config(cls, config, **changes) -> "RetryPolicy":
        """The policy for these settings; `changes` replace whole fields (tests' shorter waits)."""
        return dataclasses.replace(cls(repush=Backoff(config.ack_timeout, CAP)), **changes)
