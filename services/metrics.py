"""Prometheus metrics, served on a port of their own when --metrics-listen is set.

Counted at the edges: RPCs by the interceptor, deliveries and acks by the
servicer, storage by the metered store; what the core tallies itself (retention,
background task failures) is read from it at each scrape. Label sets are
bounded: RPC methods and status codes are fixed lists, and the unread backlog
is reported for the groups with the largest backlog only.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from services.config import ServerTls
    from services.core.chatroom import Chatroom
    from services.core.store import Store

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

NOTES_SENT = Counter("chatroom_notes_sent", "Notes stored (a retried send counts once).", registry=REGISTRY)
DELIVERIES = Counter("chatroom_deliveries", "Notes sent on subscriber streams.", registry=REGISTRY)
ACKS = Counter("chatroom_acks", "Acks received on subscriber streams.", registry=REGISTRY)
SESSIONS = Gauge("chatroom_sessions", "Subscriber streams open on this server.", registry=REGISTRY)
STORAGE_ERRORS = Counter("chatroom_storage_errors", "Storage operations that failed.", registry=REGISTRY)
HISTORY_CALLS = Counter("chatroom_history_calls", "ListNotes calls answered.", registry=REGISTRY)
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
        except Exception as error:
            log.warning("could not sample unread backlog: %s", error)
        else:
            UNREAD.clear()
            for group, unread in totals.items():
                UNREAD.labels(group).set(unread)
        await asyncio.sleep(UNREAD_SAMPLE_INTERVAL_S)


class CoreCollector(Collector):
    """What the core tallies itself, read at each scrape."""

    def __init__(self, chatroom: Chatroom) -> None:
        self._chatroom = chatroom

    def collect(self) -> Iterator[Metric]:
        deleted = CounterMetricFamily(
            "chatroom_notes_deleted", "Notes deleted by retention, by limit.", labels=["reason"]
        )
        for reason, count in sorted(self._chatroom.retention.deleted.items()):
            deleted.add_metric([reason], count)
        yield deleted
        lost = CounterMetricFamily(
            "chatroom_notes_lost_to_retention", "Notes deleted by the hard limit before a member read them."
        )
        lost.add_metric([], self._chatroom.retention.lost)
        yield lost
        catchups = CounterMetricFamily(
            "chatroom_catchups", "Groups caught up from storage (notes committed elsewhere, or uncertain)."
        )
        catchups.add_metric([], self._chatroom.catchup.handled)
        yield catchups
        failures = CounterMetricFamily(
            "chatroom_background_task_failures",
            "Errors a background task survived, by task.",
            labels=["task"],
        )
        for task, count in sorted(self._chatroom.tasks.failures.items()):
            failures.add_metric([task], count)
        yield failures


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


def _observe(
    method: str, context: grpc.aio.ServicerContext, started: float, error: BaseException | None
) -> None:
    code = context.code()
    if code is None and (context.cancelled() or isinstance(error, asyncio.CancelledError)):
        code = grpc.StatusCode.CANCELLED  # the client went away (or the server stopped the call)
    elif code is None:
        code = grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN
    RPC_SECONDS.labels(method, code.name).observe(time.perf_counter() - started)


def _timed_unary(method: str, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started, error = time.perf_counter(), None
        try:
            return await behavior(request, context)
        except BaseException as raised:
            error = raised
            raise
        finally:
            _observe(method, context, started, error)

    return timed


def _timed_stream(method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
    """A handler may yield its responses or write them with context.write (as health's Watch does)."""
    if not inspect.isasyncgenfunction(behavior):
        return _timed_unary(method, behavior)

    async def timed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        started, error = time.perf_counter(), None
        try:
            async for response in behavior(request, context):
                yield response
        except BaseException as raised:
            error = raised
            raise
        finally:
            _observe(method, context, started, error)

    return timed
