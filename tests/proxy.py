"""A TCP proxy a test can cut and restore, to take a database away from a server
without touching the database itself; it can also show a test the bytes it carries."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Observer = Callable[[int, bool, bytes], None]
"""Called with (connection number, whether the bytes go upstream, the bytes), from the proxy's thread."""


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, observe: Observer | None = None) -> None:
        self._target = (target_host, target_port)
        self._observe = observe
        self._numbers = itertools.count()
        self.accepted = 0
        """Connections accepted, refused ones (while cut) included."""
        self._loop = asyncio.new_event_loop()
        self._connections: set[asyncio.StreamWriter] = set()
        self._open = True
        self.port = 0
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()
        server.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, server.wait_closed(), return_exceptions=True))
        self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if not self._open:
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._connections |= {writer, upstream_writer}
        number = next(self._numbers)
        upstream, downstream = (self._observer(number, way) for way in (True, False))
        await asyncio.gather(
            _pipe(reader, upstream_writer, upstream), _pipe(upstream_reader, writer, downstream)
        )
        self._connections -= {writer, upstream_writer}

    def _observer(self, number: int, upstream: bool) -> Callable[[bytes], None] | None:
        observe = self._observe
        return None if observe is None else lambda data: observe(number, upstream, data)

    def cut(self) -> None:
        """Closes every connection and refuses new ones."""

        def close_all() -> None:
            self._open = False
            for writer in self._connections:
                writer.transport.abort()

        self._loop.call_soon_threadsafe(close_all)

    def restore(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self, "_open", True)

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, observe: Callable[[bytes], None] | None
) -> None:
    try:
        while data := await reader.read(65536):
            if observe is not None:
                observe(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


@contextmanager
def tcp_proxy(host: str, port: int, observe: Observer | None = None) -> Iterator[TcpProxy]:
    proxy = TcpProxy(host, port, observe)
    try:
        yield proxy
    finally:
        proxy.close()
