"""The chatroom server: gRPC services, health, reflection, metrics and draining.

`ChatServer` is the server itself — start it, stop it — with no signal
handling, so that the same server runs in a test, in a process or embedded in
another program. `serve()` is the process: it runs a ChatServer until SIGTERM
or SIGINT, then stops it gracefully; a second SIGINT during the drain stops
at once.

Stopping: health turns NOT_SERVING at once, open streams end with UNAVAILABLE
(clients reconnect and resume from their cursor), unary calls in flight get
`shutdown_grace_s` to finish, pending acks are written. Health also says
NOT_SERVING while storage is unusable, except for the "liveness" service,
which stays SERVING while the process runs (what a liveness probe should ask:
a database outage is no reason to restart the server).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from functools import partial
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from services import admin_servicer, chat_servicer
from services.admin_servicer import AdminServicer
from services.chat_servicer import ChatServicer
from services.config import ServerConfig, ServerTls, Transport
from services.core.chatroom import Chatroom
from services.health import DrainingHealthServicer
from services.metered_store import metered
from services.metrics import REGISTRY, CoreCollector, MetricsInterceptor, sample_unread_forever, serve_metrics
from services.reflection import DocumentedReflection
from services.storage import open_store

log = logging.getLogger(__name__)

SERVICE_NAMES = (chat_servicer.SERVICE.full_name, admin_servicer.SERVICE.full_name)
LIVENESS = "liveness"
"""A health service that is SERVING as long as the process serves at all."""
CONNECTION_AGE_GRACE_MS = 5_000
MAX_PENDING_REQUESTS = 20_000
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class BindError(RuntimeError):
    pass


def server_options(transport: Transport) -> list[tuple[str, int]]:
    keepalive_ms = int(transport.keepalive_s * 1000)
    options = [
        ("grpc.so_reuseport", 0),  # refuse to share a port instead of splitting traffic
        ("grpc.max_receive_message_length", transport.max_message_bytes),
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", keepalive_ms),
        ("grpc.http2.ping_timeout_ms", keepalive_ms),  # gRPC core times keepalive pings by this
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),  # idle streams need pings too
        # How often a client may ping (ours: every 20 s by default) before it is told to calm down.
        ("grpc.http2.min_ping_interval_without_data_ms", int(transport.min_client_ping_interval_s * 1000)),
        # Thousands of clients reconnecting at once (after a restart) must queue, not be refused.
        ("grpc.server.max_pending_requests", MAX_PENDING_REQUESTS),
        ("grpc.server.max_pending_requests_hard_limit", 2 * MAX_PENDING_REQUESTS),
    ]
    if transport.max_connection_age_s:
        options += [
            ("grpc.max_connection_age_ms", int(transport.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", CONNECTION_AGE_GRACE_MS),
        ]
    return options


class ChatServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.address = ""
        self.health_address = ""
        store = open_store(config.db)
        self.chatroom = Chatroom(
            metered(store) if config.metrics_listen else store, config.admin_token, config.chatroom
        )
        self._health = DrainingHealthServicer()
        self._servers: list[grpc.aio.Server] = []
        self._stack = AsyncExitStack()

    async def start(self) -> str:
        """Opens storage, binds, serves; returns the bound address. On failure nothing is left running."""
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self.address

    async def _start(self) -> None:
        config = self.config
        await self.chatroom.start()
        self._stack.push_async_callback(self.chatroom.close)
        if config.metrics_listen:
            self._serve_metrics()
        interceptors = [MetricsInterceptor()] if config.metrics_listen else []
        server = grpc.aio.server(options=server_options(config.transport), interceptors=interceptors)
        ChatServicer(self.chatroom).add_to(server)
        AdminServicer(self.chatroom).add_to(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(DocumentedReflection(names), server)
        self._servers = [server]
        self.address = _bind(server, config.listen, await _credentials(config.tls))
        if config.health_listen:
            health_only = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
            health_pb2_grpc.add_HealthServicer_to_server(self._health, health_only)
            self.health_address = _bind(health_only, config.health_listen, None)
            self._servers.append(health_only)
        for each in self._servers:
            await each.start()
        self._stack.push_async_callback(self._stop_servers, 0)
        await self._health.set(LIVENESS, SERVING)
        await self._set_health(self.chatroom.storage_available)
        self.chatroom.watch_storage(self._set_health)
        security = config.tls.describe() if config.tls else "plaintext"
        log.info("chatroom listening on %s (%s), storage %r", self.address, security, self.chatroom.store)
        if config.health_listen:
            log.info("health only, plaintext, on %s", self.health_address)

    def _serve_metrics(self) -> None:
        try:
            stop_metrics = serve_metrics(self.config.metrics_listen, self.config.tls)
        except OSError as error:
            raise BindError(f"cannot serve metrics on {self.config.metrics_listen}: {error}") from None
        self._stack.push_async_callback(asyncio.to_thread, stop_metrics)
        collector = CoreCollector(self.chatroom)
        REGISTRY.register(collector)
        self._stack.callback(REGISTRY.unregister, collector)
        self.chatroom.tasks.start("unread-sampler", partial(sample_unread_forever, self.chatroom.store))

    async def _set_health(self, available: bool) -> None:
        if self._health.draining:
            return
        for service in ("", *SERVICE_NAMES):
            await self._health.set(service, SERVING if available else NOT_SERVING)

    async def stop(self, grace_s: float | None = None) -> None:
        """Drains (health NOT_SERVING, streams end, unary calls get grace_s) and closes."""
        grace = self.config.shutdown_grace_s if grace_s is None else grace_s
        log.info("shutting down: draining unary calls for up to %.0f s", grace)
        await self._health.enter_graceful_shutdown()
        self.chatroom.end_sessions()
        await self._stop_servers(grace)
        await self._stack.aclose()
        log.info("stopped")

    async def stop_now(self) -> None:
        """Cuts a drain short: calls still running are cancelled."""
        await self._stop_servers(0)

    async def _stop_servers(self, grace_s: float) -> None:
        await asyncio.gather(*(each.stop(grace_s) for each in self._servers))


async def serve(config: ServerConfig, on_ready: Callable[[ChatServer], None] | None = None) -> None:
    """Runs a server until SIGTERM or SIGINT; a second SIGINT cuts the drain short."""
    with _signals() as received:
        server = ChatServer(config)
        starting = asyncio.ensure_future(server.start())
        if await _signal_first(starting, received) is not None:
            starting.cancel()  # a signal during start-up: stop cleanly all the same
            await asyncio.gather(starting, return_exceptions=True)
            return
        starting.result()
        # What start-up allocated lives as long as the server: keep the collector off it,
        # so that its pauses (and the tail latency they cause) stay short.
        gc.freeze()
        if on_ready is not None:
            on_ready(server)
        await received.get()
        stopping = asyncio.ensure_future(server.stop())
        while (signum := await _signal_first(stopping, received)) is not None:
            if signum == signal.SIGINT:
                log.info("interrupted again: stopping at once")
                await server.stop_now()
        stopping.result()


async def _signal_first(work: asyncio.Future[Any], received: asyncio.Queue[int]) -> int | None:
    """Waits until work is done or a signal comes; returns the signal if it came first."""
    arrival = asyncio.ensure_future(received.get())
    await asyncio.wait({work, arrival}, return_when=asyncio.FIRST_COMPLETED)
    if arrival.done():
        return arrival.result()
    arrival.cancel()
    return None


@contextmanager
def _signals() -> Iterator[asyncio.Queue[int]]:
    """SIGTERM and SIGINT as they arrive; installed first, so that no moment of start-up misses one."""
    received: asyncio.Queue[int] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, received.put_nowait, signum)
    try:
        yield received
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _credentials(tls: ServerTls | None) -> grpc.ServerCredentials | None:
    if tls is None:
        return None

    def load() -> grpc.ServerCredentials:
        client_ca = tls.client_ca.read_bytes() if tls.client_ca else None
        return grpc.ssl_server_credentials(
            [(tls.key.read_bytes(), tls.cert.read_bytes())],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )

    try:
        return await asyncio.to_thread(load)
    except OSError as error:
        raise BindError(f"cannot read TLS files: {error}") from None


def _bind(server: grpc.aio.Server, listen: str, credentials: grpc.ServerCredentials | None) -> str:
    host = listen.rpartition(":")[0]
    try:
        if credentials is None:
            bound_port = server.add_insecure_port(listen)
        else:
            bound_port = server.add_secure_port(listen, credentials)
    except RuntimeError:
        bound_port = 0
    if not bound_port:
        raise BindError(f"cannot listen on {listen}: {_why_not_bindable(listen)}")
    return f"{host}:{bound_port}"


def _why_not_bindable(listen: str) -> str:
    """Says what gRPC's own message ("Failed to bind ... set GRPC_VERBOSITY=debug") does not."""
    host, _, port = listen.rpartition(":")
    if not port.isdigit():  # a unix: socket path
        return "gRPC could not create the socket there (does its directory exist?)"
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except (OSError, OverflowError) as error:
        return f"cannot resolve {host!r} ({error})"
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return (
                        f"port {port} is already in use (another chatroom server? 'chatctl server status'"
                        " tells); stop it or choose another address with --listen"
                    )
                return f"{error.strerror or error} (is {host} an address of this machine?)"
    return "gRPC refused the address"
