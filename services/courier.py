"""The HTTP client for Courier's receive endpoint: POST {courier}/c/chp/{channel}/receive."""

import enum
import logging
import time

import aiohttp
import orjson

from services.metrics import Metrics

logger = logging.getLogger(__name__)


class Outcome(enum.Enum):
    OK = "ok"              # Courier handled the events
    REJECTED = "rejected"  # Courier said 4xx: retrying cannot help
    FAILED = "failed"      # 5xx, a timeout or no connection: try again later


class CourierClient:
    """Posts a chat's events to Courier over one pooled, keep-alive HTTP session."""

    def __init__(self, base_url: str, metrics: Metrics, timeout: float = 10.0, connections: int = 100):
        self.base_url = base_url.rstrip("/")
        self.metrics = metrics
        self.timeout = timeout
        self.connections = connections
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

    async def post_events(self, channel_uuid: str, secret: str, chat_id: str, events: list) -> Outcome:
        started = time.perf_counter()
        outcome = await self._post(channel_uuid, secret, chat_id, events)
        self.metrics.courier_latency.observe(time.perf_counter() - started)
        if outcome is not Outcome.OK:
            self.metrics.courier_errors.labels(outcome.value).inc()
        return outcome

    async def _post(self, channel_uuid: str, secret: str, chat_id: str, events: list) -> Outcome:
        body = orjson.dumps({"chat_id": chat_id, "secret": secret, "events": events})
        try:
            async with self._session.post(self.receive_url(channel_uuid), data=body) as response:
                answer = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            logger.warning("courier unreachable channel=%s chat=%s: %s", channel_uuid, chat_id,
                           type(e).__name__ + (f" {e}" if str(e) else ""))
            return Outcome.FAILED
        if 200 <= status < 300:
            return Outcome.OK
        text = answer.decode(errors="replace")
        # Courier's error body never echoes the secret, so it is safe to log a prefix of it
        if 400 <= status < 500:
            logger.error("courier rejected %d event(s) channel=%s chat=%s status=%d: %s",
                         len(events), channel_uuid, chat_id, status, text[:200])
            return Outcome.REJECTED
        logger.warning("courier failed channel=%s chat=%s status=%d: %s",
                       channel_uuid, chat_id, status, text[:200])
        return Outcome.FAILED
