"""Status reports of several chats of one channel, posted to Courier as one request.

Every ack makes a msg_status for Courier, and at any load most of the chats being posted have only
that to say: a request each would cost a Courier call per message. Courier records a status by its
message, whichever chat the request names (its CHP handler reads the chat only for msg_in and
chat_started), so requests made of statuses alone, from chats of the same channel, that come within
`linger` seconds share one post. Each chat still takes, commits and retries its own events under
its own lock (services/courier/queue.py); only the HTTP call is shared.

Invariants:
- a group holds requests of one channel, made of msg_status events only, and its body stays within
  MAX_BODY bytes and `most` events;
- a group is posted at most `linger` seconds after its first request, or at once when the next
  request would not fit;
- every request added gets exactly one answer: the group's outcome, or None when Courier refused a
  status of a group of several chats for good (which one is unknown: the caller posts its own alone).
"""

import asyncio
import logging

import orjson

from services.courier.client import MAX_BODY, CourierClient, Outcome

logger = logging.getLogger(__name__)

LINGER = 0.02  # seconds a status waits for others to share its post: nobody waits on a status
MOST = 200  # events in one shared post


class _Group:
    __slots__ = ("secret", "chat_id", "events", "futures", "used", "room", "timer")

    def __init__(self, client: CourierClient, secret: str, chat_id: str):
        self.secret = secret
        self.chat_id = chat_id
        self.events: list = []
        self.futures: list[asyncio.Future] = []
        self.used = 0
        self.room = MAX_BODY - len(client.body(chat_id, secret, []))
        self.timer = None

    def fits(self, events: list, size: int) -> bool:
        return len(self.events) + len(events) <= MOST and self.used + size + 1 <= self.room


class StatusPosts:
    def __init__(self, client: CourierClient, linger: float = LINGER):
        self.client = client
        self.linger = linger
        self._open: dict[str, _Group] = {}  # channel uuid -> the group still taking requests
        self._posting: set[asyncio.Task] = set()

    def post(self, channel_uuid: str, secret: str, chat_id: str, events: list) -> asyncio.Future:
        """Post these statuses with others of the channel; the Outcome, or None (see the invariants)."""
        size = sum(len(orjson.dumps(event)) + 1 for event in events) - 1
        group = self._open.get(channel_uuid)
        if group is not None and (group.secret != secret or not group.fits(events, size)):
            self._send(channel_uuid)
            group = None
        if group is None:
            group = self._open[channel_uuid] = _Group(self.client, secret, chat_id)
            group.timer = asyncio.get_running_loop().call_later(self.linger, self._send, channel_uuid)
        group.used += size + (1 if group.events else 0)
        group.events.extend(events)
        future = asyncio.get_running_loop().create_future()
        group.futures.append(future)
        return future

    def _send(self, channel_uuid: str):
        group = self._open.pop(channel_uuid, None)
        if group is None:
            return
        group.timer.cancel()
        task = asyncio.get_running_loop().create_task(self._post(channel_uuid, group))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def _post(self, channel_uuid: str, group: _Group):
        try:
            outcome = await self.client.post_events(channel_uuid, group.secret, group.chat_id, group.events)
        except asyncio.CancelledError:
            # stopping: each chat keeps its events queued, for the next poster
            self._answer(group, Outcome.FAILED)
            raise
        except Exception as e:  # noqa: BLE001 - every chat waiting on this post must hear of it
            for future in group.futures:
                if not future.done():
                    future.set_exception(e)
            raise
        if outcome is Outcome.STATUS_REJECTED and len(group.futures) > 1:
            outcome = None
        self._answer(group, outcome)

    @staticmethod
    def _answer(group: _Group, outcome: Outcome | None):
        for future in group.futures:
            if not future.done():
                future.set_result(outcome)

    def flush(self):
        """Post every group now (at shutdown: the chats waiting on them are being settled)."""
        for channel_uuid in list(self._open):
            self._send(channel_uuid)
