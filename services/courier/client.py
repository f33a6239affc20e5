"""The HTTP client for Courier's receive endpoint: POST {courier}/c/chp/{channel}/receive.

Courier answers 400 for every error of its handler, the ones a retry cannot fix (a wrong secret or
chat ID, a body that fails validation) and its own failures alike (it could not write an event,
could not load the channel); the error text in the body tells them apart.
"""

import enum
import logging
import time

import aiohttp
import orjson
from cachetools import LRUCache

from services.metrics import Metrics
from services.store import keys

logger = logging.getLogger(__name__)

# Courier reads at most this much of a request body (handlers.maxBodyReadBytes); the rest is cut
# off and the JSON fails to parse, so a larger batch could never succeed
MAX_BODY = 1024 * 1024

# The errors of a 400 that the same request would get again (Courier's chip handler and its JSON
# decoding): the events are dropped. Any other 400 is Courier failing, and is retried.
PERMANENT_ERRORS = (
    "secret incorrect",
    "invalid chat id",
    "unable to parse request JSON",
    "request JSON doesn't match required schema",
    "Field validation for",
)

# The errors of a 400 about a msg_status Courier cannot attach to a message: from v10.3.19 Courier
# reads only msg_uuid, so a status by msg_id (a message sent before the upgrade) is refused for good
# (earlier backends say "no id"). Courier stops at that status: it writes none of the events after it.
STATUS_ERRORS = (
    "message status with no UUID or external id",
    "message status with no id or external id",
)


class Outcome(enum.Enum):
    OK = "ok"  # Courier handled the events
    REJECTED = "rejected"  # Courier refused them for good: retrying cannot help
    STATUS_REJECTED = "status_rejected"  # Courier refused a msg_status for good, and wrote nothing after it
    REFUSED = "refused"  # a 400 that is Courier's own failure: try again later
    FAILED = "failed"  # 5xx, a timeout or no connection: try again later

    @property
    def retried(self) -> bool:
        return self in (Outcome.REFUSED, Outcome.FAILED)


def errors_of(answer: bytes) -> list[str]:
    """The error texts of Courier's error body, {"message": "Error", "data": [{"type": "error",
    "error": "..."}]}; none when the body is not of that shape (a proxy's page, say)."""
    try:
        data = orjson.loads(answer).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return []
    if not isinstance(data, list):
        return []
    return [item["error"] for item in data if isinstance(item, dict) and isinstance(item.get("error"), str)]


def refusal(status: int, answer: bytes) -> Outcome:
    """What a 4xx answer means. Only Courier's own 400s that say so are for good. Any other 4xx (a 404
    from a wrong --courier-url, a proxy's 401, 403 or 413) is a setting an operator can mend, so the
    events wait for it, until --inbound-expiry, instead of being lost."""
    texts = errors_of(answer) if status == 400 else []
    if any(marker in text for text in texts for marker in PERMANENT_ERRORS):
        return Outcome.REJECTED
    if any(marker in text for text in texts for marker in STATUS_ERRORS):
        return Outcome.STATUS_REJECTED
    return Outcome.REFUSED


class Troubles:
    """What Courier answered this process for each chat since its last success: the first and the
    last error, and how many posts failed (`attempts`); what a dead letter says went wrong. In
    memory, for `size` chats at most (the least recent forgotten)."""

    def __init__(self, size: int = 10_000):
        self._chats = LRUCache(size)

    def failed(self, key: str, error: str):
        now = time.time()
        known = self._chats.get(key) or {"first_error": error, "first_error_at": now, "attempts": 0}
        self._chats[key] = {**known, "last_error": error, "last_error_at": now, "attempts": known["attempts"] + 1}

    def succeeded(self, key: str):
        self._chats.pop(key, None)

    def of(self, key: str) -> dict:
        """first_error, first_error_at, last_error, last_error_at and attempts; {} if none is known."""
        return dict(self._chats.get(key, {}))


class CourierClient:
    """Posts a chat's events to Courier over one pooled, keep-alive HTTP session."""

    def __init__(self, base_url: str, metrics: Metrics, timeout: float, connections: int = 100):
        self.base_url = base_url.rstrip("/")
        self.metrics = metrics
        self.timeout = timeout
        self.connections = connections
        self.troubles = Troubles()
        self._session = None

    async def start(self):
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout, connect=min(self.timeout, 5.0)),
            connector=aiohttp.TCPConnector(limit=self.connections),
            headers={"User-Agent": "chip", "Content-Type": "application/json"},
        )

    async def close(self):
        if self._session is not None:
            await self._session.close()

    def receive_url(self, channel_uuid: str) -> str:
        return f"{self.base_url}/c/chp/{channel_uuid}/receive"

    @staticmethod
    def body(chat_id: str, secret: str, events: list) -> bytes:
        return orjson.dumps({"chat_id": chat_id, "secret": secret, "events": events})

    async def post_events(self, channel_uuid: str, secret: str, chat_id: str, events: list) -> Outcome:
        started = time.perf_counter()
        outcome, label, error = await self._post(channel_uuid, secret, chat_id, events)
        self.metrics.courier_latency.observe(time.perf_counter() - started)
        if outcome is Outcome.OK:
            self.troubles.succeeded(keys.chat_key(channel_uuid, chat_id))
        else:
            self.metrics.courier_errors.labels(label).inc()
            self.troubles.failed(keys.chat_key(channel_uuid, chat_id), error)
        return outcome

    async def _post(self, channel_uuid: str, secret: str, chat_id: str, events: list) -> tuple[Outcome, str, str]:
        """The outcome, how it is counted in chip_courier_errors (`rejected` a 4xx that is not
        retried, `refused` a 400 that is, `failed` a 5xx or no answer) and the error in a line."""
        try:
            async with self._session.post(
                self.receive_url(channel_uuid), data=self.body(chat_id, secret, events)
            ) as response:
                answer = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            error = type(e).__name__ + (f" {e}" if str(e) else "")
            logger.warning("courier unreachable channel=%s chat=%s: %s", channel_uuid, chat_id, error)
            return Outcome.FAILED, Outcome.FAILED.value, f"no answer: {error}"
        if 200 <= status < 300:
            return Outcome.OK, Outcome.OK.value, ""
        text = answer.decode(errors="replace")
        # Courier's error body never echoes the secret, so it is safe to log (and keep) a prefix of it
        error = f"{status}: " + ("; ".join(errors_of(answer)) or " ".join(text.split()))[:200]
        outcome = refusal(status, answer) if 400 <= status < 500 else Outcome.FAILED
        if outcome in (Outcome.REJECTED, Outcome.STATUS_REJECTED):
            logger.error(
                "courier rejected %d event(s) channel=%s chat=%s status=%d: %s",
                len(events),
                channel_uuid,
                chat_id,
                status,
                text[:200],
            )
            return outcome, Outcome.REJECTED.value, error
        if outcome is Outcome.REFUSED:
            logger.warning(
                "courier refused %d event(s) for now, will retry channel=%s chat=%s status=%d: %s",
                len(events),
                channel_uuid,
                chat_id,
                status,
                text[:200],
            )
            return outcome, outcome.value, error
        logger.warning("courier failed channel=%s chat=%s status=%d: %s", channel_uuid, chat_id, status, text[:200])
        return Outcome.FAILED, Outcome.FAILED.value, error
