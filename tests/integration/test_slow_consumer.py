"""A reader that stops reading while 30,000 notes (90 MB of text) flow costs the
server bounded memory, does not hold back the others, and gets every note in
order when it resumes. Were its queue unbounded, the server would hold all 90 MB."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest

from admin_cli import processes
from chatroom.v1 import chat_pb2, chat_pb2_grpc
from clients import ChatClient, Note
from tests.support import ServerProcess, bearer

NOTES = 30_000
NOTE_BYTES = 3_000
SENDERS = 8
MEMORY_BOUND_MB = 64
"""Well below the 90 MB an unbounded queue would hold."""
LAG_BOUND_S = 5.0
"""Chad, reading normally, has every note within this long of the last send."""


def rss_mb(pid: int) -> float:
    return processes.rss_bytes(pid) / 2**20


@pytest.mark.slow
def test_a_stalled_reader_costs_bounded_memory_and_slows_nobody(tmp_path: Path) -> None:
    fresh_server = ServerProcess(tmp_path).start()  # SQLite: what is measured is the server's memory
    try:
        _stall_one_reader(fresh_server)
    finally:
        fresh_server.stop()


def _stall_one_reader(fresh_server: ServerProcess) -> None:
    assert fresh_server.watched is not None
    pid = fresh_server.watched.process.pid
    with fresh_server.channel() as channel:
        tokens = fresh_server.admin(channel).create_group("team", ["alice", "bob", "chad"])

    async def scenario() -> None:
        async with grpc.aio.insecure_channel(fresh_server.address) as raw:
            bob = chat_pb2_grpc.ChatServiceStub(raw).ChatStream(metadata=bearer(tokens["bob"]))
            await bob.write(chat_pb2.ChatStreamRequest(subscribe=chat_pb2.Subscribe(group="team")))
            await bob.initial_metadata()  # subscribed; from now on bob reads nothing
            before_mb = rss_mb(pid)

            async with (
                ChatClient(fresh_server.address, tokens["alice"]) as alice,
                ChatClient(fresh_server.address, tokens["chad"]) as chad,
            ):
                received_at: list[float] = []

                async def read_all() -> list[int]:
                    seqs = []
                    async for note in chad.notes("team"):
                        assert isinstance(note, Note)  # no retention: no gap
                        seqs.append(note.seq)
                        if len(seqs) == NOTES:
                            received_at.append(time.monotonic())
                            return seqs
                    raise AssertionError("chad's stream ended")

                chad_reads = asyncio.create_task(read_all())

                async def send(share: range) -> None:
                    for i in share:
                        await alice.send("team", f"note {i} ".ljust(NOTE_BYTES, "."))

                await asyncio.gather(*(send(range(k, NOTES, SENDERS)) for k in range(SENDERS)))
                sent_at = time.monotonic()
                assert await asyncio.wait_for(chad_reads, 120) == list(range(1, NOTES + 1))
                lag_s = received_at[0] - sent_at
            grown_mb = rss_mb(pid) - before_mb
            print(f"\nserver RSS grew {grown_mb:.1f} MB with a stalled reader; chad's lag {lag_s:.2f} s")
            assert grown_mb < MEMORY_BOUND_MB
            assert lag_s < LAG_BOUND_S

            seqs: list[int] = []
            while len(seqs) < NOTES:
                response = await asyncio.wait_for(bob.read(), 60)
                assert response is not grpc.aio.EOF
                seqs.extend(note.seq for note in response.notes)
                await bob.write(chat_pb2.ChatStreamRequest(ack=chat_pb2.Ack(seq=seqs[-1])))
            assert seqs == list(range(1, NOTES + 1))
            bob.cancel()

    asyncio.run(scenario())
