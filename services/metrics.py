"""Prometheus metrics, served on a port of their own when --metrics-listen is set.

Label sets are bounded: RPC methods and status codes are fixed lists, and the
unread backlog is reported for the groups with the largest backlog only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from services.core.errors import ChatroomError

if TYPE_CHECKING:  # both import this module
    from services.config import ServerTls
    from services.storage.base import Store

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

NOTES_SENT = Counter("chatroom_notes_sent", "Notes stored (a retried send counts once).", registry=REGISTRY)
DELIVERIES = Counter("chatroom_deliveries", "Notes sent on subscriber streams.", registry=REGISTRY)
ACKS = Counter("chatroom_acks", "Acks received on subscriber streams.", registry=REGISTRY)
SESSIONS = Gauge("chatroom_sessions", "Subscriber streams open on this server.", registry=REGISTRY)
STORAGE_ERRORS = Counter("chatroom_storage_errors", "Storage operations that failed.", registry=REGISTRY)
UNREAD = Gauge(
    "chatroom_unread_notes",
    "Unread notes summed over a group's members, for the groups with the largest backlog.",
    ["group"],
    registry=REGISTRY,
)
RPC_SECONDS = Histogram(
    "chatroom_rpc_duration_seconds",
    "Time from the start to the end of an RPC (for streams: their lifetime).",
    ["method", "code"],
    registry=REGISTRY,
)

UNREAD_TOP_GROUPS = 20
UNREAD_SAMPLE_INTERVAL_S = 30.0


def serve_metrics(listen: str, tls: ServerTls | None) -> Callable[[], None]:
    """Starts the /metrics endpoint in its own thread; returns its stop function."""
    host, _, port = listen.rpartition(":")
    files: dict[str, Any] = {}
    if tls is not None:
        files = {"certfile": str(tls.cert), "keyfile": str(tls.key)}
        if tls.client_ca is not None:
            files |= {"client_cafile": str(tls.client_ca), "client_auth_required": True}
    server, thread = start_http_server(int(port), host or "0.0.0.0", registry=REGISTRY, **files)
    scheme = "https" if tls else "http"
    log.info("metrics on %s://%s:%d/metrics", scheme, host, server.server_port)

    def stop() -> None:
        server.shutdown()
        thread.join()

    return stop


async def sample_unread_forever(store: Store) -> None:
    """Refreshes the unread gauge; a full count is too costly to run per scrape."""
    while True:
        try:
            totals = await store.unread_totals(UNREAD_TOP_GROUPS)
        except ChatroomError as error:
            log.warning("could not sample unread backlog: %s", error)
        else:
            UNREAD.clear()
            for group, unread in totals.items():
                UNREAD.labels(group).set(unread)
        await asyncio.sleep(UNREAD_SAMPLE_INTERVAL_S)


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Times every RPC by method and final status code."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _timed_unary(method, handler.unary_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _timed_stream(method, handler.stream_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _timed_stream(method, handler.unary_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return handler


def _observe(method: str, context: grpc.aio.ServicerContext, started: float, failed: bool) -> None:
    code = context.code()
    if code is None and context.cancelled():
        code = grpc.StatusCode.CANCELLED
    elif code is None:
        code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
    RPC_SECONDS.labels(method, code.name).observe(time.perf_counter() - started)


def _timed_unary(method: str, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started, failed = time.perf_counter(), True
        try:
            response = await behavior(request, context)
            failed = False
            return response
        finally:
            _observe(method, context, started, failed)

    return timed


def _timed_stream(
    method: str, behavior: Callable[..., AsyncIterator[Any]]
) -> Callable[..., AsyncIterator[Any]]:
    async def timed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        started, failed = time.perf_counter(), True
        try:
            async for response in behavior(request, context):
                yield response
            failed = False
        finally:
            _observe(method, context, started, failed)

    return timed
