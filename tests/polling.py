"""Waiting for what chip does a moment after the answer a test saw (a commit after Courier's 200, say)."""

import asyncio


async def wait_until(predicate, timeout=5.0, interval=0.05) -> bool:
    """Whether predicate() came true within `timeout` seconds, looking every `interval` seconds."""
    for _ in range(int(timeout / interval)):
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()
