"""Calls gathered over one turn of the event loop and carried out together once the turn ends.

Under load one turn handles many requests and frames; what each of them asks of Redis or the
database can then go as one pipeline or one query instead of a round trip each (Scripts, and the
URN reads of resuming visitors in Lookups).
"""

import asyncio

from services.shutdown import settle


class TurnBatch:
    """`await batch.add(item)` answers with the item's result. `run(items)` gets every item added in
    the turn, in order, and returns a result per item, an Exception instance for one that failed;
    if run() itself fails, every item gets its exception."""

    def __init__(self, run):
        self._run = run
        self._waiting: list[tuple[object, asyncio.Future]] = []
        self._tasks: set[asyncio.Task] = set()

    def add(self, item) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((item, future))
        return future

    def _flush(self):
        waiting, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._settle(waiting))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, waiting: list):
        try:
            results = await self._run([item for item, _ in waiting])
        except Exception as e:  # noqa: BLE001 - a lost connection, say: every caller gets it
            results = [e] * len(waiting)
        except BaseException:
            for _, future in waiting:
                future.cancel()  # no caller waits for ever on a run that was cancelled
            raise
        for (_, future), result in zip(waiting, results):
            if future.done():
                continue  # its caller was cancelled meanwhile
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def wait(self, timeout: float):
        """Wait up to `timeout` seconds for the runs already started (their callers want the answers);
        a run still going then is cancelled, its callers' answers with it: left pending, it outlived
        the event loop and died with an error at the process's exit."""
        await settle(list(self._tasks), timeout, "batched calls", "their callers get no answer")
        for task in list(self._tasks):
            task.cancel()
