"""Waiting for what chip does a moment after the answer a test saw (a commit after Courier's 200, say)."""

import asyncio


async def wait_until(predicate, timeout=5.0) -> bool:
    """Whether predicate() came true within `timeout` seconds, looking every 50 ms."""
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()
