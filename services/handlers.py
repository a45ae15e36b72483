"""How the servicers are put on a server, so that unparsable requests get a clear answer.

The generated `add_…Servicer_to_server` functions let grpcio parse requests,
and a request it cannot parse (invalid UTF-8 in a string field, a truncated
message) is answered UNKNOWN "Unexpected DecodeError" before any of our code
runs. Here each request is parsed by a deserializer that catches the error and
hands the method a `Malformed` value instead; the method authenticates first,
as every call does, then refuses it with INVALID_ARGUMENT (`parsed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from services.core.errors import InvalidRequest

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class Malformed:
    type_name: str
    error: str


def parsed(request: M | Malformed) -> M:
    """The request, or INVALID_ARGUMENT if its bytes did not parse."""
    if isinstance(request, Malformed):
        raise InvalidRequest(f"the {request.type_name} could not be parsed: {request.error}")
    return request


def _tolerant(message_class: type[Message]) -> Callable[[bytes], Message | Malformed]:
    def deserialize(data: bytes) -> Message | Malformed:
        try:
            return message_class.FromString(data)
        except DecodeError as error:
            return Malformed(message_class.DESCRIPTOR.name, str(error) or "not a valid message")

    return deserialize


def add_service(
    server: grpc.aio.Server,
    servicer: object,
    service: ServiceDescriptor,
    *,
    serialized_responses: frozenset[str] = frozenset(),
) -> None:
    """Registers every method of the service; those named in serialized_responses yield bytes."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        kinds = (method.client_streaming, method.server_streaming)
        make: Any = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[kinds]
        serializer = (
            bytes
            if method.name in serialized_responses
            else GetMessageClass(method.output_type).SerializeToString
        )
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_tolerant(GetMessageClass(method.input_type)),
            response_serializer=serializer,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
