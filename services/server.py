"""The chatroom server process: gRPC services, health, reflection and shutdown.

Shutdown on SIGTERM or SIGINT: health turns NOT_SERVING at once, open streams
end with UNAVAILABLE (clients reconnect and resume from their cursor), unary
calls in flight get `shutdown_grace_s` to finish, pending acks are written.
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

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from chatroom.v1 import admin_pb2, admin_pb2_grpc
from services import chat_servicer
from services.admin_servicer import AdminServicer
from services.chat_servicer import ChatServicer
from services.config import ServerConfig, ServerTls, Transport
from services.core.chatroom import Chatroom
from services.health import DrainingHealthServicer
from services.metrics import MetricsInterceptor, sample_unread_forever, serve_metrics
from services.reflection import DocumentedReflection
from services.storage import open_store

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    chat_servicer.SERVICE_NAME,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
)
CONNECTION_AGE_GRACE_MS = 5_000
MAX_PENDING_REQUESTS = 20_000


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
        # How often a client may ping (ours: every 20 s) before it is told to calm down.
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


async def serve(config: ServerConfig, on_ready: Callable[[str], None] | None = None) -> None:
    """Runs until SIGTERM or SIGINT; on_ready gets the bound address."""
    async with AsyncExitStack() as stack:
        # First of all, so that a signal at any later moment means a clean stop.
        stop = stack.enter_context(_stop_on_signals())
        chatroom = Chatroom(open_store(config.db), config.admin_token, config.chatroom)
        await chatroom.start()
        stack.push_async_callback(chatroom.close)
        if config.metrics_listen:
            try:
                stop_metrics = serve_metrics(config.metrics_listen, config.tls)
            except OSError as error:
                raise BindError(f"cannot serve metrics on {config.metrics_listen}: {error}") from None
            stack.push_async_callback(asyncio.to_thread, stop_metrics)
            sampler = asyncio.create_task(sample_unread_forever(chatroom.store), name="unread-sampler")
            stack.push_async_callback(_cancel, sampler)
        await _serve(chatroom, config, stop, on_ready)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _serve(
    chatroom: Chatroom, config: ServerConfig, stop: asyncio.Event, on_ready: Callable[[str], None] | None
) -> None:
    interceptors = [MetricsInterceptor()] if config.metrics_listen else []
    server = grpc.aio.server(options=server_options(config.transport), interceptors=interceptors)
    chat_servicer.add_to_server(ChatServicer(chatroom), server)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(chatroom), server)
    health_servicer = DrainingHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        DocumentedReflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)), server
    )
    servers = [server]
    address = _bind(server, config.listen, await _credentials(config.tls))
    if config.health_listen:
        health_only = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_only)
        health_address = _bind(health_only, config.health_listen, None)
        servers.append(health_only)
    for each in servers:
        await each.start()
    for service in ("", *SERVICE_NAMES):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    # What start-up allocated lives as long as the server: keep the collector off it,
    # so that its pauses (and the tail latency they cause) stay short.
    gc.freeze()
    security = config.tls.describe() if config.tls else "plaintext"
    log.info("chatroom listening on %s (%s), storage %r", address, security, chatroom.store)
    if config.health_listen:
        log.info("health only, plaintext, on %s", health_address)
    if on_ready is not None:
        on_ready(address)

    await stop.wait()
    log.info("shutting down: draining unary calls for up to %.0f s", config.shutdown_grace_s)
    await health_servicer.enter_graceful_shutdown()
    chatroom.end_sessions()
    await asyncio.gather(*(each.stop(config.shutdown_grace_s) for each in servers))
    log.info("stopped")


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
    if not port.isdigit() or not host:
        return "give host:port, such as 127.0.0.1:50051 or 0.0.0.0:50051"
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


@contextmanager
def _stop_on_signals() -> Iterator[asyncio.Event]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
