"""The one place where domain errors become gRPC status codes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import NoReturn, TypeVar

import grpc

from chatroom.v1 import metadata
from services.core.errors import (
    ChatroomError,
    GroupExists,
    GroupNotFound,
    InvalidRequest,
    LimitExceeded,
    NotAllowed,
    NotAuthenticated,
    Unavailable,
)

CODES: dict[type[ChatroomError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    NotAuthenticated: grpc.StatusCode.UNAUTHENTICATED,
    NotAllowed: grpc.StatusCode.PERMISSION_DENIED,
    GroupNotFound: grpc.StatusCode.NOT_FOUND,
    GroupExists: grpc.StatusCode.ALREADY_EXISTS,
    LimitExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def code_for(error: ChatroomError) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in CODES:
            return CODES[kind]
    return grpc.StatusCode.INTERNAL


async def abort(context: grpc.aio.ServicerContext, error: ChatroomError) -> NoReturn:
    if isinstance(error, LimitExceeded) and error.retry_after_s is not None:
        context.set_trailing_metadata(
            ((metadata.RETRY_AFTER_MS, str(max(1, round(error.retry_after_s * 1000)))),)
        )
    await context.abort(code_for(error), error.message)
    raise AssertionError("context.abort returned")  # pragma: no cover


Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer")
Handler = Callable[[Servicer, Request, grpc.aio.ServicerContext], Awaitable[Response]]


def maps_errors(handler: Handler[Servicer, Request, Response]) -> Handler[Servicer, Request, Response]:
    """Ends a unary call with the status code of the domain error it raised."""

    @wraps(handler)
    async def wrapper(self: Servicer, request: Request, context: grpc.aio.ServicerContext) -> Response:
        try:
            return await handler(self, request, context)
        except ChatroomError as error:
            await abort(context, error)

    return wrapper
