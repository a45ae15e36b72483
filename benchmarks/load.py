"""The load generator's parts: connections, subscribers that ack, senders, and what they record.

Everything runs in this one asyncio process, so the perf_counter_ns stamp a
sender writes into a note's text and the moment a subscriber reads the note
come from the same clock. Subscribers ack as the client library does, with its
own ack sender, because the server stops a session that runs max_unacked notes
ahead of its cursor and because acks are part of what fan-out costs; the
ceiling's subscribers alone never ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from benchmarks.baseline_server import CEILING_METHOD
from benchmarks.targets import Metadata
from chatroom.v1 import chat_pb2, chat_pb2_grpc, metadata
from clients.chat_client import _AckSender as AckSender  # the shipped client's, not a copy

STREAMS_PER_CONNECTION = 100
"""Streams share a TCP connection in groups of this size: many clients, not one
connection carrying thousands of streams, and not one socket each either."""
OPEN_BATCH = 50
"""Streams opened at once; the next batch waits until these are subscribed, so a
burst of new streams never piles up in the server's accept queue."""
OPEN_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 30.0
TEXT_BYTES = 100
"""Notes are padded to a chat-message-like size."""


class Sink(Protocol):
    def on_notes(self, notes: Sequence[chat_pb2.Note], now_ns: int) -> None: ...

    def on_ack(self) -> None: ...


class Tap:
    """Where a set of subscribers hands what it reads; each measurement plugs in its own sink."""

    def __init__(self) -> None:
        self.sink: Sink | None = None


class Connections:
    """Separate TCP connections, a new one every `per_connection` streams, like separate clients."""

    def __init__(
        self,
        address: str,
        per_connection: int = STREAMS_PER_CONNECTION,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self._address = address
        self._per_connection = per_connection
        # A local subchannel pool stops gRPC from sharing one connection among channels.
        self._options = [("grpc.use_local_subchannel_pool", 1), *options]
        self._channels: list[grpc.aio.Channel] = []
        self._used = 0

    def channel(self) -> grpc.aio.Channel:
        if not self._channels or self._used >= self._per_connection:
            self._channels.append(grpc.aio.insecure_channel(self._address, options=self._options))
            self._used = 0
        self._used += 1
        return self._channels[-1]

    def stub(self) -> chat_pb2_grpc.ChatServiceStub:
        return chat_pb2_grpc.ChatServiceStub(self.channel())

    async def close(self) -> None:
        channels, self._channels = self._channels, []
        await asyncio.gather(*(channel.close() for channel in channels), return_exceptions=True)


class Subscriber:
    """One subscriber: subscribe, then read, hand notes to the tap, and ack exactly as
    the client library does (its ack sender, offered each response's last seq).
    With acks=False, a server-streaming call to the ceiling that sends nothing back.

    Requests go through a request iterator rather than call.write(): when a
    server refuses a new stream, grpc.aio fails write() with INTERNAL "Internal
    error from Core" and loses the real status, which the iterator form keeps.
    """

    def __init__(
        self, channel: grpc.aio.Channel, group: str, metadata: Metadata, tap: Tap, *, acks: bool = True
    ) -> None:
        self._channel = channel
        self._group = group
        self._metadata = metadata
        self.tap = tap
        self.call: Any = None
        self.received = 0
        self.ended: str | None = None
        """Why the stream ended (a status code name), once it has."""
        self._requests: asyncio.Queue[chat_pb2.ChatStreamRequest | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._acks = AckSender(self._requests) if acks else None

    async def _outgoing(self) -> AsyncIterator[chat_pb2.ChatStreamRequest]:
        while (request := await self._requests.get()) is not None:
            sink = self.tap.sink
            if sink is not None and request.HasField("ack"):
                sink.on_ack()
            yield request

    async def open(self) -> str | None:
        """Subscribes; None once the server accepted it, else the status code name of the refusal."""
        subscribe = chat_pb2.Subscribe(group=self._group)
        if self._acks is None:
            ceiling = self._channel.unary_stream(
                CEILING_METHOD,
                request_serializer=chat_pb2.Subscribe.SerializeToString,
                response_deserializer=chat_pb2.ChatStreamResponse.FromString,
            )
            self.call = ceiling(subscribe, metadata=self._metadata)
        else:
            self._requests.put_nowait(chat_pb2.ChatStreamRequest(subscribe=subscribe))
            stub = chat_pb2_grpc.ChatServiceStub(self._channel)
            self.call = stub.ChatStream(self._outgoing(), metadata=self._metadata)
        try:
            headers = await self.call.initial_metadata()
            if any(key == metadata.SUBSCRIBED for key, _ in headers or ()):
                return None
            code = await self.call.code()
        except grpc.aio.AioRpcError as error:
            code = error.code()
        return str(code.name)

    def start_reading(self) -> None:
        if self._acks is not None:
            self._acks.start()
        self._task = asyncio.create_task(self._read(), name="subscriber")

    @property
    def alive(self) -> bool:
        return self.call is not None and not self.call.done() and self.ended is None

    async def _read(self) -> None:
        call, acks = self.call, self._acks
        try:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    break
                now = time.perf_counter_ns()
                notes = response.notes
                if not notes:
                    continue
                self.received += len(notes)
                sink = self.tap.sink
                if sink is not None:
                    sink.on_notes(notes, now)
                if acks is not None:
                    acks.offer(notes[-1].seq)
            self.ended = str((await call.code()).name)
        except grpc.aio.AioRpcError as error:
            self.ended = str(error.code().name)

    async def close(self) -> None:
        """Cancels the stream and lets go of the call: a call object kept alive keeps its
        TCP connection open even after the channel is closed."""
        if self._acks is not None:
            await self._acks.close()
        self._requests.put_nowait(None)
        call, self.call = self.call, None
        if call is not None:
            call.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@dataclass
class Opened:
    """The outcome of opening many streams: who got in, who was refused and why."""

    subscribers: list[Subscriber] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        return len(self.subscribers)

    def alive(self) -> int:
        return sum(1 for subscriber in self.subscribers if subscriber.alive)

    def ended(self) -> Counter[str]:
        return Counter(s.ended or "CANCELLED" for s in self.subscribers if not s.alive)

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.subscribers), return_exceptions=True)


async def open_subscribers(
    connections: Connections,
    group: str,
    metadata: Sequence[Metadata],
    tap: Tap,
    *,
    acks: bool = True,
    start_reading: bool = True,
    batch: int = OPEN_BATCH,
) -> Opened:
    """Opens one stream per metadata entry, `batch` at a time; refusals are counted, never hidden."""
    opened = Opened()
    started = time.perf_counter()

    async def open_one(item: Metadata) -> None:
        subscriber = Subscriber(connections.channel(), group, item, tap, acks=acks)
        try:
            refusal = await asyncio.wait_for(subscriber.open(), OPEN_TIMEOUT_S)
        except TimeoutError:
            refusal = "TIMEOUT"
        if refusal is None:
            opened.subscribers.append(subscriber)
            if start_reading:
                subscriber.start_reading()
        else:
            opened.refused[refusal] += 1
            await subscriber.close()

    for first in range(0, len(metadata), batch):
        await asyncio.gather(*(open_one(item) for item in metadata[first : first + batch]))
    opened.seconds = time.perf_counter() - started
    return opened


class DeliveryRecorder:
    """One measurement: deliveries while counting, latencies of notes sent in the window,
    and which notes some subscriber still lacks (for senders' windows and the final drain)."""

    def __init__(self, phase: str, receivers: int) -> None:
        self.phase = phase
        self.receivers = receivers
        self.counting = False
        self.deliveries = 0
        self.messages = 0
        self.acks = 0
        self.latency_from_ns = 1 << 63
        self.latency_until_ns = 1 << 63
        self.latencies_ns: list[int] = []
        self.pending: dict[str, int] = {}
        self.windows: dict[str, asyncio.Semaphore] = {}
        self.drained = asyncio.Event()
        self.drained.set()

    def note_text(self, sender: int, number: int, sent_ns: int) -> tuple[str, str]:
        """The key identifying a note, and its text: phase:sender:number:sent_ns, padded."""
        key = f"{self.phase}:{sender}:{number}"
        text = f"{key}:{sent_ns}:"
        return key, text + "x" * max(0, TEXT_BYTES - len(text))

    def expect(self, key: str) -> None:
        self.pending[key] = self.receivers
        self.drained.clear()

    def forget(self, key: str) -> None:
        """A send that failed: nobody will receive it."""
        if self.pending.pop(key, None) is not None:
            self._released(key)

    def on_ack(self) -> None:
        if self.counting:
            self.acks += 1

    def on_notes(self, notes: Sequence[chat_pb2.Note], now_ns: int) -> None:
        if self.counting:
            self.messages += 1
        for note in notes:
            phase, sender, number, sent, _ = note.text.split(":", 4)
            if phase != self.phase:
                continue  # a straggler from an earlier measurement
            if self.counting:
                self.deliveries += 1
            sent_ns = int(sent)
            if self.latency_from_ns <= sent_ns <= self.latency_until_ns:
                self.latencies_ns.append(now_ns - sent_ns)
            key = f"{phase}:{sender}:{number}"
            remaining = self.pending.get(key)
            if remaining is None:
                continue
            if remaining > 1:
                self.pending[key] = remaining - 1
            else:
                del self.pending[key]
                self._released(key)

    def _released(self, key: str) -> None:
        window = self.windows.get(key.split(":")[1])
        if window is not None:
            window.release()
        if not self.pending:
            self.drained.set()

    def undelivered(self) -> int:
        """Deliveries still missing (after the drain timed out)."""
        return sum(self.pending.values())


@dataclass
class Sender:
    """A member that sends: its own connection and its credentials."""

    stub: chat_pb2_grpc.ChatServiceStub
    metadata: Metadata


async def closed_loop_sender(
    sender: Sender,
    index: int,
    group: str,
    recorder: DeliveryRecorder,
    window: int,
    stop: asyncio.Event,
    errors: Counter[str],
) -> int:
    """Sends one note at a time, as a client does, and pauses while `window` of its notes
    have not reached every subscriber: the rate found is one the server sustains, not a
    queue that grows for the length of the run."""
    semaphore = recorder.windows[str(index)] = asyncio.Semaphore(window)
    number = 0
    while not stop.is_set():
        await semaphore.acquire()
        if stop.is_set():
            break
        number += 1
        key, text = recorder.note_text(index, number, time.perf_counter_ns())
        recorder.expect(key)
        if not await _send(sender, group, text, key, errors):
            recorder.forget(key)
            await asyncio.sleep(0.05)
    return number


def wake_senders(recorder: DeliveryRecorder) -> None:
    """Lets senders blocked on a full window see that they must stop."""
    for window in recorder.windows.values():
        window.release()


async def paced_senders(
    senders: Sequence[Sender],
    group: str,
    recorder: DeliveryRecorder,
    rate: float,
    until_ns: int,
    errors: Counter[str],
) -> int:
    """Open loop: note k is due at start + k/rate whatever came back before, and its stamp is
    that due time, so a slow server cannot hide its delay by slowing the senders down."""
    interval_ns = 1e9 / rate
    start = time.perf_counter_ns()
    in_flight: set[asyncio.Task[bool]] = set()
    number = 0
    while True:
        due = start + int(number * interval_ns)
        if due >= until_ns:
            break
        delay_ns = due - time.perf_counter_ns()
        if delay_ns > 0:
            await asyncio.sleep(delay_ns / 1e9)
        index = number % len(senders)
        key, text = recorder.note_text(index, number, due)
        recorder.expect(key)
        task = asyncio.create_task(_send_or_forget(senders[index], group, text, key, recorder, errors))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        number += 1
    await asyncio.gather(*in_flight)
    return number


async def _send_or_forget(
    sender: Sender, group: str, text: str, key: str, recorder: DeliveryRecorder, errors: Counter[str]
) -> bool:
    if await _send(sender, group, text, key, errors):
        return True
    recorder.forget(key)
    return False


async def _send(sender: Sender, group: str, text: str, client_msg_id: str, errors: Counter[str]) -> bool:
    """One SendNote with a client_msg_id, as the client library always sets one."""
    request = chat_pb2.SendNoteRequest(group=group, text=text, client_msg_id=client_msg_id)
    try:
        await sender.stub.SendNote(request, metadata=sender.metadata, timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as error:
        errors[str(error.code().name)] += 1
        return False
    return True


@dataclass
class Sent:
    in_window: int
    """Notes confirmed inside the measured window."""
    seconds: float
    """The window's length."""
    total: int
    """Notes confirmed from the start of the warm-up to the last reply."""


async def send_for(
    senders: Sequence[Sender], group: str, warmup_s: float, duration_s: float, errors: Counter[str]
) -> Sent:
    """Each sender sends one note after another for warm-up + duration."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    window_from, window_until = start + warmup_s, start + warmup_s + duration_s
    sent = Sent(0, duration_s, 0)
    call_id = uuid.uuid4().hex[:12]  # client_msg_ids never repeat between calls

    async def run(sender: Sender, index: int) -> None:
        number = 0
        while loop.time() < window_until:
            number += 1
            text = f"send:{index}:{number}:0:".ljust(TEXT_BYTES, "x")
            if await _send(sender, group, text, f"{call_id}:{index}:{number}", errors):
                sent.total += 1
                if window_from <= loop.time() <= window_until:
                    sent.in_window += 1

    await asyncio.gather(*(run(sender, index) for index, sender in enumerate(senders)))
    return sent


async def send_count(
    senders: Sequence[Sender], group: str, count: int, concurrency: int, errors: Counter[str]
) -> float:
    """Sends `count` notes with `concurrency` calls in flight; returns the seconds it took.

    Without client_msg_id: this only sets a scene, and chatroom's duplicate check
    costs more the more notes a group holds (a figure of its own measures that),
    which would make writing a 100,000-note backlog take a quarter of an hour."""
    next_number = 0
    started = time.perf_counter()

    async def worker(slot: int) -> None:
        nonlocal next_number
        sender = senders[slot % len(senders)]
        while next_number < count:
            next_number += 1
            number = next_number
            text = f"backlog:{slot}:{number}:0:".ljust(TEXT_BYTES, "x")
            for _attempt in range(3):
                if await _send(sender, group, text, "", errors):
                    break

    await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
    return time.perf_counter() - started


class CountingSink:
    """Counts notes until `expected` have arrived (a catch-up)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.last_ns = 0
        self.done = asyncio.Event()

    def on_notes(self, notes: Sequence[chat_pb2.Note], now_ns: int) -> None:
        self.count += len(notes)
        if self.count >= self.expected:
            self.last_ns = now_ns
            self.done.set()

    def on_ack(self) -> None:
        pass  # a catch-up is timed by its notes alone


async def cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
