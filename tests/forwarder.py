"""A TCP forwarder on the test's event loop: what listens on loopback only (PostgreSQL, the Courier
double) made reachable on another local address, for chip processes in other network namespaces."""

import asyncio
import contextlib


class Forwarder:
    """Accepts on (host, port) and pipes each connection to (target_host, target_port) both ways."""

    def __init__(self, host: str, port: int, target_host: str, target_port: int):
        self.host, self.port = host, port
        self.target = target_host, target_port
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
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 5)
        except (OSError, asyncio.TimeoutError):
            writer.close()
            return
        pipes = [asyncio.ensure_future(self._pipe(reader, up_writer)),
                 asyncio.ensure_future(self._pipe(up_reader, writer))]
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
