"""ChatService: members send notes, read history and hold a stream of what they have not read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from chatroom.v1 import chat_pb2, metadata
from services import wire
from services.core.chatroom import Chatroom
from services.core.errors import ChatroomError, InvalidRequest
from services.core.fanout import Admission
from services.core.session import Gap, Session
from services.handlers import Malformed, add_service, parsed
from services.metrics import ACKS, DELIVERIES, HISTORY_CALLS, SESSIONS
from services.status import abort, maps_errors

SERVICE = chat_pb2.DESCRIPTOR.services_by_name["ChatService"]

Request = chat_pb2.ChatStreamRequest | Malformed


class ChatServicer:
    def __init__(self, chatroom: Chatroom) -> None:
        self._chatroom = chatroom
        self._encoder = wire.NoteEncoder()

    def add_to(self, server: grpc.aio.Server) -> None:
        add_service(server, self, SERVICE, serialized_responses=frozenset({"ChatStream"}))

    @maps_errors
    async def SendNote(
        self, request: chat_pb2.SendNoteRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> chat_pb2.SendNoteResponse:
        caller = await self._chatroom.authenticate(wire.bearer_token(context))
        send = parsed(request)
        note = await self._chatroom.send_note(caller, send.group, send.text, send.client_msg_id)
        return wire.sent(note)

    @maps_errors
    async def ListNotes(
        self, request: chat_pb2.ListNotesRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> chat_pb2.ListNotesResponse:
        caller = await self._chatroom.authenticate(wire.bearer_token(context))
        page = parsed(request)
        found = await self._chatroom.list_notes(caller, page.group, page.before_seq, page.limit)
        HISTORY_CALLS.inc()
        return wire.history(found)

    async def ChatStream(
        self, requests: AsyncIterator[Request], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """Responses leave already serialized (see wire.NoteEncoder)."""
        try:
            admission, session = await self._subscribe(requests, context)
        except ChatroomError as error:
            await abort(context, error)
        acks = asyncio.create_task(_read_acks(requests, session), name="read-acks")
        SESSIONS.inc()
        try:
            await context.send_initial_metadata(
                ((metadata.SUBSCRIBED, session.group), (metadata.MAX_UNACKED, str(session.max_unacked)))
            )
            async for item in session.items():
                if isinstance(item, Gap):
                    yield wire.gap(item)
                    continue
                yield self._encoder.response(item)
                DELIVERIES.inc(len(item))
        except ChatroomError as error:
            await abort(context, error)
        finally:
            SESSIONS.dec()
            acks.cancel()
            await asyncio.gather(acks, return_exceptions=True)
            self._chatroom.close_stream(admission, session)

    async def _subscribe(
        self, requests: AsyncIterator[Request], context: grpc.aio.ServicerContext
    ) -> tuple[Admission, Session]:
        """Identity, then a subscribe within the deadline, then membership; the stream
        counts against the member's limit from the start."""
        caller = await self._chatroom.authenticate(wire.bearer_token(context))
        admission = self._chatroom.admit(caller)
        try:
            first = await self._chatroom.first_request(admission, anext(requests, None))
            return admission, await self._chatroom.open_session(admission, _subscribed_group(first))
        except BaseException:
            self._chatroom.close_stream(admission, None)
            raise


def _subscribed_group(first: Request | None) -> str:
    if first is None:
        raise InvalidRequest("the stream ended before its subscribe")
    request = parsed(first)
    if request.WhichOneof("kind") != "subscribe":
        raise InvalidRequest("the first ChatStream message must be a subscribe")
    return request.subscribe.group


async def _read_acks(requests: AsyncIterator[Request], session: Session) -> None:
    try:
        async for request in requests:
            if isinstance(request, Malformed) or request.WhichOneof("kind") != "ack":
                session.end(InvalidRequest("only acks may follow the subscribe on a ChatStream"))
                return
            ACKS.inc()
            session.ack(request.ack.seq)
    except ChatroomError as error:
        session.end(error)
