"""The in-run baselines: a minimal grpc.aio fan-out server for chatroom.v1.ChatService.

It keeps one asyncio.Queue per subscriber and nothing else: no auth, no
storage, no cursors, no flow control. Measured exactly like the chatroom
server (its own process, same proto, same load), it shows what gRPC and Python
cost for the same traffic, so chatroom/baseline ratios isolate what chatroom's
own work (durability, identity, delivery tracking) adds.

Readers reach it two ways. ChatStream is chatroom's bidirectional stream, on
which readers ack as chatroom's do (the acks are read and dropped): the
baseline. CEILING_METHOD is a server-streaming call that takes a Subscribe and
never hears from the reader again: the pure gRPC ceiling, what fan-out costs
when nothing at all flows back.

Run: python -m benchmarks.baseline_server --listen 127.0.0.1:0
It prints "baseline listening on HOST:PORT" once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator

import grpc

from chatroom.v1 import chat_pb2, chat_pb2_grpc, metadata

CEILING_SERVICE = "benchmarks.Ceiling"
CEILING_METHOD = f"/{CEILING_SERVICE}/Subscribe"
"""Subscribe in, ChatStreamResponses out: the ceiling's server-streaming call."""

DEFAULT_MAX_BATCH = 500
"""Notes per stream message when a reader is behind: the same bound as chatroom's
sessions (MAX_BATCH_NOTES in services/core/session.py when this was written), so
batching is not what differs between the two."""


class FanoutServicer(chat_pb2_grpc.ChatServiceServicer):  # type: ignore[misc]
    def __init__(self, max_batch: int) -> None:
        self._max_batch = max_batch
        self._subscribers: dict[str, set[asyncio.Queue[chat_pb2.Note]]] = {}
        self._heads: dict[str, int] = {}

    async def SendNote(
        self, request: chat_pb2.SendNoteRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.SendNoteResponse:
        seq = self._heads.get(request.group, 0) + 1
        self._heads[request.group] = seq
        note = chat_pb2.Note(
            group=request.group, seq=seq, text=request.text, client_msg_id=request.client_msg_id
        )
        note.sent_at.GetCurrentTime()
        for queue in self._subscribers.get(request.group, ()):
            queue.put_nowait(note)
        return chat_pb2.SendNoteResponse(note=note)

    async def ChatStream(
        self,
        request_iterator: AsyncIterator[chat_pb2.ChatStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[chat_pb2.ChatStreamResponse]:
        first = await anext(request_iterator, None)
        if first is None or first.WhichOneof("kind") != "subscribe":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a subscribe")
            return
        # Acks are read (a real server must) and dropped.
        reader = asyncio.create_task(_discard(request_iterator))
        try:
            async for response in self._deliver(first.subscribe.group, context):
                yield response
        finally:
            reader.cancel()

    async def Subscribe(
        self, request: chat_pb2.Subscribe, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[chat_pb2.ChatStreamResponse]:
        """The ceiling: the same delivery with nothing to read from the reader."""
        async for response in self._deliver(request.group, context):
            yield response

    async def _deliver(
        self, group: str, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[chat_pb2.ChatStreamResponse]:
        queue: asyncio.Queue[chat_pb2.Note] = asyncio.Queue()
        subscribers = self._subscribers.setdefault(group, set())
        subscribers.add(queue)
        try:
            # The header chatroom sends once a stream is subscribed; sent here too so
            # the load generator treats every server alike.
            await context.send_initial_metadata(((metadata.SUBSCRIBED, group),))
            while True:
                batch = [await queue.get()]
                while len(batch) < self._max_batch and not queue.empty():
                    batch.append(queue.get_nowait())
                yield chat_pb2.ChatStreamResponse(notes=batch)
        finally:
            subscribers.discard(queue)


async def _discard(requests: AsyncIterator[chat_pb2.ChatStreamRequest]) -> None:
    async for _ in requests:
        pass


async def serve(listen: str, max_batch: int) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    servicer = FanoutServicer(max_batch)
    chat_pb2_grpc.add_ChatServiceServicer_to_server(servicer, server)
    ceiling = grpc.unary_stream_rpc_method_handler(
        servicer.Subscribe,
        request_deserializer=chat_pb2.Subscribe.FromString,
        response_serializer=chat_pb2.ChatStreamResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(CEILING_SERVICE, {"Subscribe": ceiling}),)
    )
    port = server.add_insecure_port(listen)
    if not port:
        raise SystemExit(f"cannot listen on {listen}")
    await server.start()
    print(f"baseline listening on {listen.rpartition(':')[0]}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline_server", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port; port 0 picks a free one")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="notes per message")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.max_batch))


if __name__ == "__main__":
    main()
