"""A TCP forwarder on the test's event loop: what listens on loopback only (PostgreSQL, the Courier
double) made reachable on another local address, for chip processes in other network namespaces."""

import asyncio
import contextlib


class Forwarder:
    """Accepts on (host, port) and pipes each connection both ways to `target`: (host, port), or
    the path of a Unix socket (an embedded PostgreSQL listens on one only)."""

    def __init__(self, host: str, port: int, target: tuple[str, int] | str):
        self.host, self.port = host, port
        self.target = target
        self.server = None
        self.pipes: set[asyncio.Task] = set()

    async def start(self):
        self.server = await asyncio.start_server(self._connection, self.host, self.port)
        return self

    async def stop(self):
        self.server.close()
        for pipe in list(self.pipes):
            pipe.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)
        await self.server.wait_closed()

    async def _connection(self, reader, writer):
        try:
            opening = (
                asyncio.open_unix_connection(self.target)
                if isinstance(self.target, str)
                else asyncio.open_connection(*self.target)
            )
            up_reader, up_writer = await asyncio.wait_for(opening, 5)
        except (TimeoutError, OSError):
            writer.close()
            return
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        self.pipes.update(pipes)
        for pipe in pipes:
            pipe.add_done_callback(self.pipes.discard)

    @staticmethod
    async def _pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
