"""The chatroom server process: gRPC services, health, reflection and shutdown.

Shutdown on SIGTERM or SIGINT: health turns NOT_SERVING at once, open streams
end with UNAVAILABLE (clients reconnect and resume from their cursor), unary
calls in flight get `shutdown_grace_s` to finish, pending acks are written.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chatroom.v1 import admin_pb2, admin_pb2_grpc, chat_pb2, chat_pb2_grpc
from services.admin_servicer import AdminServicer
from services.chat_servicer import ChatServicer
from services.config import ServerConfig
from services.core.chatroom import Chatroom
from services.health import DrainingHealthServicer
from services.metrics import MetricsInterceptor, sample_unread_forever, serve_metrics
from services.storage import open_store

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    chat_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
)

SERVER_OPTIONS = [
    # Refuse to share a port with another process instead of splitting traffic.
    ("grpc.so_reuseport", 0),
]


class BindError(RuntimeError):
    pass


async def serve(config: ServerConfig, on_ready: Callable[[str], None] | None = None) -> None:
    """Runs until SIGTERM or SIGINT; on_ready gets the bound address."""
    chatroom = Chatroom(open_store(config.db), config.admin_token, config.chatroom)
    await chatroom.start()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(chatroom.close)
        if config.metrics_listen:
            try:
                stop_metrics = serve_metrics(config.metrics_listen)
            except OSError as error:
                raise BindError(f"cannot serve metrics on {config.metrics_listen}: {error}") from None
            stack.push_async_callback(asyncio.to_thread, stop_metrics)
            sampler = asyncio.create_task(sample_unread_forever(chatroom.store), name="unread-sampler")
            stack.push_async_callback(_cancel, sampler)
        await _serve(chatroom, config, on_ready)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _serve(chatroom: Chatroom, config: ServerConfig, on_ready: Callable[[str], None] | None) -> None:
    interceptors = [MetricsInterceptor()] if config.metrics_listen else []
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=interceptors)
    chat_pb2_grpc.add_ChatServiceServicer_to_server(ChatServicer(chatroom), server)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(chatroom), server)
    health_servicer = DrainingHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = _bind(server, config.listen)
    await server.start()
    for service in ("", *SERVICE_NAMES):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info("chatroom listening on %s (plaintext), storage %r", address, chatroom.store)
    if on_ready is not None:
        on_ready(address)

    await _wait_for_signal()
    log.info("shutting down: draining unary calls for up to %.0f s", config.shutdown_grace_s)
    await health_servicer.enter_graceful_shutdown()
    chatroom.end_sessions()
    await server.stop(config.shutdown_grace_s)
    log.info("stopped")


def _bind(server: grpc.aio.Server, listen: str) -> str:
    host = listen.rpartition(":")[0]
    try:
        bound_port = server.add_insecure_port(listen)
    except RuntimeError as error:
        raise BindError(f"cannot listen on {listen}: {error}") from None
    if not bound_port:
        raise BindError(f"cannot listen on {listen}: address in use or not valid")
    return f"{host}:{bound_port}"


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
