"""The client library's ack sender: debounced acks, and the same bound on what a crash redelivers."""

from __future__ import annotations

import asyncio

from chatroom.v1 import chat_pb2
from clients.chat_client import EAGER_ACK_NOTES, _AckSender

Requests = asyncio.Queue[chat_pb2.ChatStreamRequest | None]
NOTE_GAP_S = 0.005
"""Far below the quiet period: a stream that never pauses."""
WAIT_S = 5.0


def _acked(requests: Requests) -> list[int]:
    """The acks queued so far, taken off the queue."""
    seqs = []
    while not requests.empty():
        request = requests.get_nowait()
        assert request is not None and request.WhichOneof("kind") == "ack"
        seqs.append(request.ack.seq)
    return seqs


async def _stream(acks: _AckSender, first: int, seconds: float) -> int:
    """Offers one note after another, NOTE_GAP_S apart; returns the last seq offered."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    seq = first
    while loop.time() < until:
        acks.offer(seq)
        seq += 1
        await asyncio.sleep(NOTE_GAP_S)
    return seq - 1


def test_a_lone_note_is_acked_once_notes_stop_arriving() -> None:
    async def scenario() -> None:
        requests: Requests = asyncio.Queue()
        acks = _AckSender(requests)
        acks.start()
        acks.offer(1)
        assert _acked(requests) == [], "acked before notes stopped arriving"
        request = await asyncio.wait_for(requests.get(), WAIT_S)
        assert request is not None and request.ack.seq == 1
        await acks.close()
        assert _acked(requests) == []

    asyncio.run(scenario())


def test_a_stream_that_never_pauses_is_not_acked_at_a_fixed_rate() -> None:
    """Notes 5 ms apart for 0.6 s: a fixed 50 ms throttle acks about 12 times, the
    debounced sender not at all until the notes stop (fewer than EAGER_ACK_NOTES came)."""

    async def scenario() -> None:
        requests: Requests = asyncio.Queue()
        acks = _AckSender(requests)
        acks.start()
        last = await _stream(acks, 1, 0.6)
        assert last < EAGER_ACK_NOTES
        during = _acked(requests)
        # A stall of the shared machine longer than the quiet period may cost an ack or two.
        assert len(during) <= 2, f"acked {len(during)} times while notes kept coming: {during}"
        request = await asyncio.wait_for(requests.get(), WAIT_S)
        assert request is not None and request.ack.seq == last
        await acks.close()

    asyncio.run(scenario())


def test_a_stream_that_never_pauses_is_still_acked_within_max_delay() -> None:
    async def scenario() -> None:
        requests: Requests = asyncio.Queue()
        acks = _AckSender(requests)
        acks.MAX_DELAY_S = 0.2
        acks.SPACING_S = 0.1
        acks.start()
        await _stream(acks, 1, 0.7)
        during = _acked(requests)
        assert 1 <= len(during) <= 6, during
        assert during == sorted(during)
        await acks.close()

    asyncio.run(scenario())


def test_notes_that_keep_coming_a_little_apart_are_acked_once_per_spacing() -> None:
    """Notes 80 ms apart, each after a pause longer than the quiet period, for 1.6 s:
    acking each once notes stop would send 20 acks, the spacing one per SPACING_S."""

    async def scenario() -> None:
        requests: Requests = asyncio.Queue()
        acks = _AckSender(requests)
        acks.start()
        for seq in range(1, 21):
            acks.offer(seq)
            await asyncio.sleep(0.08)
        acked = _acked(requests)
        while not acked or acked[-1] < 20:
            request = await asyncio.wait_for(requests.get(), WAIT_S)
            assert request is not None
            acked.append(request.ack.seq)
        assert len(acked) <= 2 + 1.6 / acks.SPACING_S, acked
        assert acked == sorted(acked)
        await acks.close()

    asyncio.run(scenario())


def test_never_more_than_eager_ack_notes_go_unacked() -> None:
    """What a crash can redeliver: at most EAGER_ACK_NOTES notes, however fast they come."""

    async def scenario() -> None:
        requests: Requests = asyncio.Queue()
        acks = _AckSender(requests)
        acks.start()
        acked = 0
        for seq in range(1, 4 * EAGER_ACK_NOTES + 1):
            acks.offer(seq)
            acked = max([acked, *_acked(requests)])
            assert seq - acked < EAGER_ACK_NOTES, f"{seq - acked} notes unacked"
            if seq % 100 == 0:
                await asyncio.sleep(0)
        await acks.close()
        assert max([acked, *_acked(requests)]) == 4 * EAGER_ACK_NOTES

    asyncio.run(scenario())


def test_a_small_server_window_is_acked_at_half_its_size() -> None:
    """A server that sends 8 notes past the cursor and then waits: acking only at
    EAGER_ACK_NOTES or after SPACING_S would pause a catch-up 2 s every 8 notes."""

    async def scenario() -> None:
        requests: Requests = asyncio.Queue()
        acks = _AckSender(requests)
        acks.start(window=8)
        for seq in range(1, 13):
            acks.offer(seq)
        assert _acked(requests) == [4, 8, 12]
        await acks.close()

    asyncio.run(scenario())


def test_close_acks_what_was_seen_and_stops() -> None:
    async def scenario() -> None:
        requests: Requests = asyncio.Queue()
        acks = _AckSender(requests)
        acks.start()
        acks.offer(7)
        await acks.close()
        assert _acked(requests) == [7]
        acks.offer(8)  # a note read after close is acked by no timer
        await asyncio.sleep(2 * acks.QUIET_S)
        assert _acked(requests) == []

    asyncio.run(scenario())
