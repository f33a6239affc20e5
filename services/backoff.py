import random


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before try number `attempt` + 1: doubling from `base`, capped, jittered
    into [half, full] so that many chats failing together do not retry together."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.5, 1.0)
