"""Bounded waits for shutdown: a stop that waits on something that never ends would hang chip's
SIGTERM until supervisord kills it, with every socket left to time out instead of closing with 1001.
"""

import asyncio
import logging

logger = logging.getLogger(__name__)


async def settle(awaitables, timeout: float, what: str, left: str) -> bool:
    """Wait up to `timeout` seconds for `awaitables` (tasks or coroutines) to finish; if some are
    still running then, log that `what` did not finish and what that leaves (`left`), and return
    False without waiting longer. Uses asyncio.wait, not wait_for: wait_for can swallow a
    cancellation of its caller, and a stop waiting in it might then never end."""
    pending = {asyncio.ensure_future(a) for a in awaitables}
    pending = {task for task in pending if not task.done()}
    if not pending:
        return True
    _, still = await asyncio.wait(pending, timeout=timeout)
    if still:
        logger.warning("shutdown: %s still running after %.1f s; %s", what, timeout, left)
    return not still
