"""ChatService: members send notes and hold a stream of what they have not read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from chatroom.v1 import chat_pb2, chat_pb2_grpc, metadata
from services import wire
from services.core.chatroom import Caller, Chatroom
from services.core.errors import ChatroomError, InvalidRequest
from services.core.session import Session
from services.metrics import ACKS, DELIVERIES, SESSIONS
from services.status import abort, maps_errors

SERVICE_NAME = chat_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name


def add_to_server(servicer: ChatServicer, server: grpc.aio.Server) -> None:
    """Like the generated add_ChatServiceServicer_to_server, but ChatStream
    responses are bytes that go to the wire as they are."""
    handlers = {
        "ChatStream": grpc.stream_stream_rpc_method_handler(
            servicer.ChatStream,
            request_deserializer=chat_pb2.ChatStreamRequest.FromString,
            response_serializer=bytes,
        ),
        "SendNote": grpc.unary_unary_rpc_method_handler(
            servicer.SendNote,
            request_deserializer=chat_pb2.SendNoteRequest.FromString,
            response_serializer=chat_pb2.SendNoteResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):  # type: ignore[misc]
    def __init__(self, chatroom: Chatroom) -> None:
        self._chatroom = chatroom

    @maps_errors
    async def SendNote(
        self, request: chat_pb2.SendNoteRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.SendNoteResponse:
        caller = await self._chatroom.authenticate(wire.bearer_token(context))
        note = await self._chatroom.send_note(caller, request.group, request.text, request.client_msg_id)
        return chat_pb2.SendNoteResponse(note=wire.note(note))

    async def ChatStream(
        self,
        request_iterator: AsyncIterator[chat_pb2.ChatStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[bytes]:
        """Responses leave already serialized (see wire.stream_response)."""
        try:
            caller = await self._chatroom.authenticate(wire.bearer_token(context))
            session = await self._subscribe(caller, request_iterator)
        except ChatroomError as error:
            await abort(context, error)
        acks = asyncio.create_task(_read_acks(request_iterator, session), name="read-acks")
        SESSIONS.inc()
        try:
            await context.send_initial_metadata(((metadata.SUBSCRIBED, session.group),))
            async for batch in session.batches():
                yield wire.stream_response(batch)
                DELIVERIES.inc(len(batch))
        except ChatroomError as error:
            await abort(context, error)
        finally:
            SESSIONS.dec()
            acks.cancel()
            await asyncio.gather(acks, return_exceptions=True)
            self._chatroom.close_session(session)

    async def _subscribe(
        self, caller: Caller, requests: AsyncIterator[chat_pb2.ChatStreamRequest]
    ) -> Session:
        first = await anext(requests, None)
        if first is None or first.WhichOneof("kind") != "subscribe":
            raise InvalidRequest("the first ChatStream message must be a subscribe")
        return await self._chatroom.open_session(caller, first.subscribe.group)


async def _read_acks(requests: AsyncIterator[chat_pb2.ChatStreamRequest], session: Session) -> None:
    async for request in requests:
        if request.WhichOneof("kind") != "ack":
            session.end(InvalidRequest("only acks may follow the subscribe on a ChatStream"))
            return
        ACKS.inc()
        session.ack(request.ack.seq)
