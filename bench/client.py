"""Visitors and load generator, run in worker processes so the client side is not one saturated core.

Each worker holds its own share of the chats: it opens their sockets, binds them with `start_chat`
(chat_id of a seeded contact), acks every `chat_out` at once, and posts to `/wc/send` for its own
chats only, so the latency of a message (POST sent -> chat_out received) is measured on one clock
in one process. The same code drives chip and the baseline.
"""

import asyncio
import resource
import time

import aiohttp
import orjson

SECRET = "sesame"
NOFILE = 65536


class Worker:
    def __init__(self, index: int, channel_uuid: str):
        self.index = index
        self.channel_uuid = channel_uuid
        self.groups: dict = {}  # server name -> [(chat_id, ws, reader task)]
        self.sent_at: dict = {}  # message id -> perf_counter when its POST was sent
        self.latencies: list = []
        self.duplicates = 0
        self.missing: set = set()  # ids not delivered when their step ended: late, or lost
        self.late = 0
        self.last_delivery = 0.0
        self.window = None  # closed-loop mode: a slot per message in flight
        self.http = None
        self.ws_session = None

    async def open(self):
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        self.ws_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    # visitors

    async def connect(self, group: str, ws_urls: list, chat_ids: list, concurrency: int = 50) -> dict:
        """Open and bind a socket per chat (chat i on ws_urls[i % len]) as `group`; how long it took."""
        gate = asyncio.Semaphore(concurrency)
        refused = 0

        async def one(url, chat_id):
            nonlocal refused
            async with gate:
                ws = await self.ws_session.ws_connect(url, autoping=True)
                await ws.send_str(orjson.dumps({"type": "start_chat", "chat_id": chat_id}).decode())
                reply = orjson.loads((await ws.receive()).data)
                if reply.get("type") != "chat_resumed":
                    refused += 1
                task = asyncio.get_running_loop().create_task(self._read(ws))
                self.groups.setdefault(group, []).append((chat_id, ws, task))

        started = time.perf_counter()
        await asyncio.gather(*[one(ws_urls[i % len(ws_urls)], chat_id) for i, chat_id in enumerate(chat_ids)])
        return {"sockets": len(chat_ids), "refused": refused, "seconds": time.perf_counter() - started}

    async def _read(self, ws):
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            event = orjson.loads(frame.data)
            if event["type"] != "chat_out":
                continue
            msg_id = event["msg_out"]["id"]
            sent = self.sent_at.pop(msg_id, None)
            if sent is None and msg_id in self.missing:
                self.missing.discard(msg_id)
                self.late += 1
            elif sent is None:
                self.duplicates += 1
            else:
                self.last_delivery = time.perf_counter()
                self.latencies.append(self.last_delivery - sent)
                if self.window is not None:
                    self.window.release()
            await ws.send_str(f'{{"type":"ack_chat","msg_id":{msg_id}}}')

    async def close(self, group: str = None) -> dict:
        """Close the group's sockets (all, without a group)."""
        count = 0
        for name in [group] if group else list(self.groups):
            for _, ws, task in self.groups.pop(name, []):
                await ws.close()
                task.cancel()
                count += 1
        return {"closed": count}

    # load

    async def load(
        self,
        group: str,
        post_urls: list,
        rate: float,
        duration: float,
        first_id: int,
        in_flight: int = 0,
        drain: float = 15.0,
    ) -> dict:
        """Post to the group's chats, round robin, for `duration` seconds: at `rate` per second, or
        (in_flight > 0) keeping that many messages between POST and chat_out. Then wait up to
        `drain` seconds for what is still on its way."""
        chats = [chat_id for chat_id, _, _ in self.groups[group]]
        self.latencies, self.duplicates, errors = [], 0, []
        self.window = asyncio.Semaphore(in_flight) if in_flight else None
        tasks = set()
        cpu, started = time.process_time(), time.perf_counter()
        sent = 0
        while (now := time.perf_counter()) - started < duration:
            due = sent + in_flight if in_flight else int(rate * (now - started))
            while sent < due and time.perf_counter() - started < duration:
                if self.window is not None:
                    await self.window.acquire()
                msg_id = first_id + sent
                task = asyncio.get_running_loop().create_task(
                    self._post(post_urls[sent % len(post_urls)], chats[sent % len(chats)], msg_id, errors)
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(0.001)
        posting = time.perf_counter() - started
        deadline = time.perf_counter() + drain
        while (self.sent_at or tasks) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        self.window = None
        missing, self.sent_at = list(self.sent_at), {}
        self.missing.update(missing)
        return {
            "sent": sent,
            "errors": len(errors),
            "error_samples": errors[:3],
            "missing": len(missing),
            "duplicates": self.duplicates,
            "latencies": self.latencies,
            "posting_seconds": posting,
            "seconds": max(self.last_delivery - started, posting),
            "cpu_seconds": time.process_time() - cpu,
        }

    async def settle(self) -> dict:
        """How many missing messages came late since the last settle, and how many are still missing."""
        late, self.late = self.late, 0
        missing, self.missing = len(self.missing), set()
        return {"late": late, "lost": missing}

    async def _post(self, url: str, chat_id: str, msg_id: int, errors: list):
        body = orjson.dumps(
            {"chat_id": chat_id, "secret": SECRET, "msg": {"id": msg_id, "text": "benchmark message", "origin": "flow"}}
        )
        self.sent_at[msg_id] = time.perf_counter()
        try:
            async with self.http.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                await response.read()
                status = response.status
        except aiohttp.ClientError as e:
            status = repr(e)
        if status != 200:
            errors.append(status)
            if self.sent_at.pop(msg_id, None) is not None and self.window is not None:
                self.window.release()


def run(conn, index: int, channel_uuid: str):
    """A worker process: carries out (method, kwargs) commands from the pipe until ("stop", {})."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(NOFILE, hard)), hard))
    asyncio.run(_serve(conn, Worker(index, channel_uuid)))


async def _serve(conn, worker: Worker):
    loop = asyncio.get_running_loop()
    await worker.open()
    try:
        while True:
            method, kwargs = await loop.run_in_executor(None, conn.recv)
            if method == "stop":
                break
            try:
                conn.send(await getattr(worker, method)(**kwargs))
            except Exception as e:  # noqa: BLE001 - reported to the orchestrator, which stops the run
                conn.send({"failed": f"{type(e).__name__}: {e}"})
    finally:
        await worker.close()
        await worker.http.close()
        await worker.ws_session.close()
