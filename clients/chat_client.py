"""ChatClient: subscribe and send with the delivery guarantees applications want.

The server delivers at least once; this client makes it exactly once for the
application. It hands over each note at most once (anything with a seq at or
below the last one handed over is dropped), acknowledges a note only after the
application has seen it, hands over a Gap in place of notes that retention
deleted before they were read (once, and acked like a note, so the cursor moves
past it), and on a lost connection reconnects with backoff,
moving on to the next server address if there are several. Sends carry a
generated client_msg_id, so retrying them after a timeout never stores a note
twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc

from chatroom.v1 import chat_pb2, chat_pb2_grpc, metadata
from clients.backoff import Backoff, BackoffDelays
from clients.channel import DEFAULT_KEEPALIVE_S, ClientTls, aio_channel
from clients.model import ChatError, ConnectionEvent, EventKind, Gap, Note, NotePage

DEFAULT_BACKOFF = Backoff()
ACK_INTERVAL_S = 0.05
EAGER_ACK_NOTES = 256
HISTORY_PAGE = 50
"""Notes a history page holds unless asked otherwise (the server allows up to 500)."""

T = TypeVar("T")

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
    }
)


class ChatClient:
    def __init__(
        self,
        servers: str | Sequence[str],
        token: str,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        send_retry_s: float = 30.0,
        call_timeout_s: float = 10.0,
        on_event: Callable[[ConnectionEvent], None] | None = None,
        tls: ClientTls | None = None,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
    ) -> None:
        """keepalive_s: seconds between pings on a quiet connection (see clients/channel.py)."""
        if isinstance(servers, str):
            servers = servers.split(",")
        self._servers = [server.strip() for server in servers if server.strip()]
        if not self._servers:
            raise ValueError("at least one server address is needed")
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._backoff = backoff
        self._send_retry_s = send_retry_s
        self._call_timeout_s = call_timeout_s
        self._on_event = on_event
        self._tls = tls
        self._keepalive_s = keepalive_s
        self._sending = _Link(self._servers, tls, keepalive_s)
        self._handed: dict[str, int] = {}

    @property
    def server(self) -> str:
        """The address sends go to now."""
        return self._sending.server

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._sending.close()

    async def send(self, group: str, text: str, *, client_msg_id: str | None = None) -> Note:
        """Stores a note and returns it with its seq; retried while the server is unreachable."""
        request = chat_pb2.SendNoteRequest(
            group=group, text=text, client_msg_id=client_msg_id or uuid.uuid4().hex
        )
        response: chat_pb2.SendNoteResponse = await self._unary(
            lambda stub: stub.SendNote(request, metadata=self._metadata, timeout=self._call_timeout_s)
        )
        return Note.from_proto(response.note)

    async def history(self, group: str, before_seq: int = 0, limit: int = HISTORY_PAGE) -> NotePage:
        """The page of kept notes just below before_seq (0: the newest), in seq order.

        Members only; own notes included. Page back by passing the page's first
        note's seq as the next before_seq while has_more holds."""
        request = chat_pb2.ListNotesRequest(group=group, before_seq=before_seq, limit=limit)
        response: chat_pb2.ListNotesResponse = await self._unary(
            lambda stub: stub.ListNotes(request, metadata=self._metadata, timeout=self._call_timeout_s)
        )
        notes = tuple(Note.from_proto(note) for note in response.notes)
        return NotePage(notes, response.first_seq, response.has_more)

    async def _unary(self, call: Callable[[chat_pb2_grpc.ChatServiceStub], Awaitable[T]]) -> T:
        """One call, retried on the next server while none answers (for up to send_retry_s),
        and on the same one after a rate limit; any other failure raises ChatError."""
        delays = self._backoff.delays()
        deadline = asyncio.get_running_loop().time() + self._send_retry_s
        while True:
            try:
                return await call(self._sending.stub())
            except grpc.aio.AioRpcError as error:
                limited = _retry_after_s(error)
                delay = delays.next() if limited is None else limited
                if error.code() not in RETRYABLE or asyncio.get_running_loop().time() + delay > deadline:
                    raise ChatError(error.code(), error.details() or "") from None
                if limited is None:  # a rate limit is waited out on the same server
                    await self._sending.next_server()
                await asyncio.sleep(delay)

    async def notes(self, group: str, *, after_seq: int = 0) -> AsyncGenerator[Note | Gap, None]:
        """Every unread note of the group, then live ones, each exactly once, forever.

        Notes that retention deleted before they were read come as one Gap, in
        seq order, where they would have been. A note or gap is acknowledged
        once the consumer asks for the next one. after_seq says what an earlier
        run already handed over (it is skipped, and acked). Raises ChatError
        when the subscription is refused for good.
        """
        self._handed[group] = max(self._handed.get(group, 0), after_seq)
        delays = self._backoff.delays()
        # A channel of its own: a failing send, which moves on to another server, must not
        # close the channel under this stream (nor this stream's failover move the sends).
        link = _Link(self._servers, self._tls, self._keepalive_s)
        try:
            while True:
                attempt = _Attempt()
                try:
                    limited = None
                    async for note in self._subscribe_once(link, group, delays, attempt):
                        yield note
                    detail = "stream ended"
                except grpc.aio.AioRpcError as error:
                    if error.code() not in RETRYABLE:
                        raise ChatError(error.code(), error.details() or "") from None
                    detail = f"{error.code().name}: {error.details()}"
                    limited = _retry_after_s(error)
                except asyncio.CancelledError:
                    if _being_cancelled():
                        raise
                    detail = "stream cancelled"  # gRPC ended the call under us: reconnect
                delay = delays.next() if limited is None else limited
                kind: EventKind = "lost" if attempt.subscribed else "attempt_failed"
                self._report(ConnectionEvent(kind, link.server, group, detail, delay))
                if limited is None:
                    await link.next_server()
                await asyncio.sleep(delay)
        finally:
            await link.close()

    async def _subscribe_once(
        self, link: _Link, group: str, delays: BackoffDelays, attempt: _Attempt
    ) -> AsyncIterator[Note | Gap]:
        """One stream, until it ends; failures surface as AioRpcError.

        Requests go out through an iterator rather than call.write(): a stream
        the server refuses at once would fail write() with a vague INTERNAL,
        while reads report its real status."""
        requests: asyncio.Queue[chat_pb2.ChatStreamRequest | None] = asyncio.Queue()
        requests.put_nowait(chat_pb2.ChatStreamRequest(subscribe=chat_pb2.Subscribe(group=group)))
        call = link.stub().ChatStream(_drain(requests), metadata=self._metadata)
        acks = _AckSender(requests)
        try:
            headers = await call.initial_metadata()
            if not any(key == metadata.SUBSCRIBED for key, _ in headers or ()):
                await call.read()  # raises the refusal
                return
            delays.reset()
            attempt.subscribed = True
            self._report(ConnectionEvent("subscribed", link.server, group))
            acks.start(_header_int(headers, metadata.MAX_UNACKED))
            while True:
                response = await call.read()  # raises when the stream fails
                if response is grpc.aio.EOF:
                    return
                if response.HasField("gap") and (gap := self._unseen(group, response.gap)) is not None:
                    yield gap
                    self._handed[group] = gap.last_seq
                for proto in response.notes:
                    if proto.seq > self._handed.get(group, 0):
                        yield Note.from_proto(proto)
                        # Resumed: the consumer has seen the note.
                        self._handed[group] = proto.seq
                        acks.offer(proto.seq)
                acks.offer(self._handed.get(group, 0))  # redeliveries and gaps are acked too
        finally:
            await acks.close()
            requests.put_nowait(None)
            call.cancel()

    def _unseen(self, group: str, proto: chat_pb2.Gap) -> Gap | None:
        """The part of a gap above what was handed over: a gap told again after a
        reconnect (it was not acked yet) is not handed over twice."""
        handed = self._handed.get(group, 0)
        if proto.last_seq <= handed:
            return None
        return Gap(max(proto.first_seq, handed + 1), proto.last_seq, proto.reason)

    def _report(self, event: ConnectionEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)


@dataclass(slots=True)
class _Attempt:
    """One try at a stream: whether it got as far as being subscribed."""

    subscribed: bool = False


class _Link:
    """A channel to one of the addresses, moving on to the next after a failure."""

    def __init__(self, servers: Sequence[str], tls: ClientTls | None, keepalive_s: float) -> None:
        self._servers = servers
        self._tls = tls
        self._keepalive_s = keepalive_s
        self._index = 0
        self._channel: grpc.aio.Channel | None = None

    @property
    def server(self) -> str:
        return self._servers[self._index]

    def stub(self) -> chat_pb2_grpc.ChatServiceStub:
        if self._channel is None:
            self._channel = aio_channel(self.server, self._tls, self._keepalive_s)
        return chat_pb2_grpc.ChatServiceStub(self._channel)

    async def next_server(self) -> None:
        """Drops the channel; the next call dials the next address."""
        await self.close()
        self._index = (self._index + 1) % len(self._servers)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


def _retry_after_s(error: grpc.aio.AioRpcError) -> float | None:
    """How long a rate limit asks to wait, if the error is one."""
    if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    milliseconds = _header_int(error.trailing_metadata(), metadata.RETRY_AFTER_MS)
    return None if milliseconds is None else milliseconds / 1000


def _header_int(headers: grpc.aio.Metadata | None, name: str) -> int | None:
    for key, value in headers or ():
        if key == name and str(value).isdigit():
            return int(value)
    return None


def _being_cancelled() -> bool:
    """Whether the task itself is being cancelled (rather than a call ending under it)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _drain(
    requests: asyncio.Queue[chat_pb2.ChatStreamRequest | None],
) -> AsyncIterator[chat_pb2.ChatStreamRequest]:
    while (request := await requests.get()) is not None:
        yield request


class _AckSender:
    """Acks what the consumer has seen, cumulatively and sparingly: debounced.

    An ack goes out once notes stop arriving for QUIET_S, though no sooner than
    SPACING_S after the previous one; at once when EAGER_ACK_NOTES are unacked
    (or half the server's window, if that is less: see metadata.MAX_UNACKED);
    and at the latest MAX_DELAY_S after the oldest unacked note, so that a
    stream that never pauses is still acked. A note of a quiet conversation is
    acked QUIET_S after it was seen; a busy stream, its notes close together or
    a little apart, costs the server an ack per EAGER_ACK_NOTES or per SPACING_S
    instead of one per note (a thousand readers of a busy group: 500 acks a
    second, not 20,000), and its unread count lags by at most SPACING_S. A
    crash redelivers at most EAGER_ACK_NOTES notes, as ever, and the server's
    window never stalls a catch-up.
    Timers, not a task: an idle stream costs nothing, a busy one a timer per SPACING_S."""

    QUIET_S = ACK_INTERVAL_S
    SPACING_S = 2.0
    MAX_DELAY_S = 2.0
    TIMER_SLACK_S = 0.001
    """A timer may fire this early (the loop's clock resolution and more): it counts as due."""

    def __init__(self, requests: asyncio.Queue[chat_pb2.ChatStreamRequest | None]) -> None:
        self._requests = requests
        self._seen = self._sent = 0
        self._first_unacked_at = self._last_seen_at = 0.0
        self._sent_at = float("-inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._eager = EAGER_ACK_NOTES

    def start(self, window: int | None = None) -> None:
        """window: the server's max_unacked, when it told it."""
        self._loop = asyncio.get_running_loop()
        if window is not None:
            self._eager = max(1, min(EAGER_ACK_NOTES, window // 2))

    def offer(self, seq: int) -> None:
        if seq <= self._seen:
            return
        self._seen = seq
        if self._loop is None:
            return  # not started, or closed: close() acks what was seen
        if seq - self._sent >= self._eager:
            self._send()
            return
        now = self._last_seen_at = self._loop.time()
        if self._timer is None:
            self._first_unacked_at = now
            self._timer = self._loop.call_at(self._due_at(), self._due)

    async def close(self) -> None:
        """Stops, queueing a last ack of what was seen (best effort: the stream may be gone)."""
        self._loop = None
        if self._seen > self._sent:
            self._send()
        self._cancel_timer()

    def _due(self) -> None:
        self._timer = None
        if self._loop is None or self._seen <= self._sent:
            return
        due = self._due_at()
        if due - self._loop.time() > self.TIMER_SLACK_S:
            self._timer = self._loop.call_at(due, self._due)  # notes kept coming
        else:
            self._send()

    def _due_at(self) -> float:
        quiet = min(self._last_seen_at + self.QUIET_S, self._first_unacked_at + self.MAX_DELAY_S)
        return max(quiet, self._sent_at + self.SPACING_S)

    def _send(self) -> None:
        self._requests.put_nowait(chat_pb2.ChatStreamRequest(ack=chat_pb2.Ack(seq=self._seen)))
        self._sent = self._seen
        if self._loop is not None:
            self._sent_at = self._loop.time()
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
