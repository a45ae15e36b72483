"""grpc.health.v1.Health whose Watch streams end once shutdown is announced.

The stock servicer keeps Watch streams open until the server cancels them at
the end of its grace period, so one watcher would hold every shutdown for the
whole grace. Here a watcher is sent NOT_SERVING and then its stream ends.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2


class _WatchOver(Exception):
    pass


class _EndsAfterNotServing:
    """A servicer context that ends the Watch loop after it reports NOT_SERVING."""

    def __init__(self, context: grpc.aio.ServicerContext, servicer: DrainingHealthServicer) -> None:
        self._context = context
        self._servicer = servicer

    async def write(self, response: health_pb2.HealthCheckResponse) -> None:
        await self._context.write(response)
        if self._servicer.draining and response.status == health_pb2.HealthCheckResponse.NOT_SERVING:
            raise _WatchOver

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class DrainingHealthServicer(health.aio.HealthServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.draining = False

    async def enter_graceful_shutdown(self) -> None:
        self.draining = True
        await super().enter_graceful_shutdown()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> None:
        try:
            await super().Watch(request, _EndsAfterNotServing(context, self))
        except _WatchOver:
            return
