"""The measurements, one function per figure and run, each against one server.

Every function gets a server and returns what it saw, refusals and errors
included; choosing runs, medians and ratios is the runner's job. Server CPU is
read from /proc before and after the measured window, so set-up and drain are
never billed.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from admin_cli import processes
from benchmarks import cores, targets
from benchmarks.load import (
    CALL_TIMEOUT_S,
    TEXT_BYTES,
    Connections,
    CountingSink,
    DeliveryRecorder,
    Opened,
    Sender,
    Subscriber,
    Tap,
    cancel_all,
    closed_loop_sender,
    open_subscribers,
    paced_senders,
    send_count,
    send_for,
    wake_senders,
)
from benchmarks.settings import Sizes
from benchmarks.targets import Target


def percentile(sorted_values: list[int], fraction: float) -> int | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e6


class CpuMeter:
    """Server and generator CPU over one window, as % of one core."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._server = processes.cpu_seconds(pid)
        self._generator = cores.own_cpu_seconds()
        self._started = time.perf_counter()

    def stop(self) -> tuple[float, float, float]:
        """(server CPU-seconds, server %, generator %)."""
        wall = time.perf_counter() - self._started
        server = processes.cpu_seconds(self._pid) - self._server
        generator = cores.own_cpu_seconds() - self._generator
        return server, 100 * server / wall, 100 * generator / wall


async def _wait(event: asyncio.Event, timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


# -- 1, 2, 8: fan-out ---------------------------------------------------------------


@dataclass
class Audience:
    """A group on one server with its subscribers reading and its senders connected."""

    target: Target
    group: str
    opened: Opened
    senders: list[Sender]
    tap: Tap
    connections: list[Connections]

    async def close(self) -> None:
        await self.opened.close()
        for connections in self.connections:
            await connections.close()


async def open_audience(target: Target, group: str, subscribers: int, senders: int) -> Audience:
    readers = [f"{group}-r{i:05d}" for i in range(subscribers)]
    writers = [f"{group}-s{i}" for i in range(senders)]
    metadata = await target.create_group(group, readers + writers)
    tap = Tap()
    reader_connections = Connections(target.server.address)
    sender_connections = Connections(target.server.address, per_connection=1)
    opened = await open_subscribers(
        reader_connections, group, [metadata[r] for r in readers], tap, acks=target.acks
    )
    sender_list = [Sender(sender_connections.stub(), metadata[w]) for w in writers]
    return Audience(target, group, opened, sender_list, tap, [reader_connections, sender_connections])


@dataclass
class FanoutResult:
    subscribers: int
    senders: int
    deliveries_per_s: float
    notes_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    server_cpu_s_per_1000: float | None
    server_cpu_pct: float
    generator_cpu_pct: float
    notes_per_message: float | None
    acks_per_s: float
    latency_samples: int
    undelivered: int
    send_errors: dict[str, int]
    streams_lost: int


async def fanout(audience: Audience, senders: int, sizes: Sizes, phase: str) -> FanoutResult:
    """Closed-loop senders for warm-up + measured window; deliveries/s, latency, CPU per delivery."""
    receivers = audience.opened.alive()
    recorder = DeliveryRecorder(phase, receivers)
    audience.tap.sink = recorder
    stop = asyncio.Event()
    errors: Counter[str] = Counter()
    tasks = [
        asyncio.create_task(
            closed_loop_sender(
                audience.senders[index], index, audience.group, recorder, sizes.window, stop, errors
            )
        )
        for index in range(senders)
    ]
    try:
        await asyncio.sleep(sizes.warmup_s)
        meter = CpuMeter(audience.target.server.pid)
        started = time.perf_counter_ns()
        recorder.latency_from_ns, recorder.counting = started, True
        await asyncio.sleep(sizes.measure_s)
        recorder.counting = False
        ended = time.perf_counter_ns()
        recorder.latency_until_ns = ended
        server_cpu, server_pct, generator_pct = meter.stop()
        stop.set()
        wake_senders(recorder)
        await _wait(recorder.drained, sizes.drain_timeout_s)
        await asyncio.wait(tasks, timeout=CALL_TIMEOUT_S)
    finally:
        await cancel_all(tasks)
        audience.tap.sink = None
    seconds = (ended - started) / 1e9
    latencies = sorted(recorder.latencies_ns)
    deliveries = recorder.deliveries
    return FanoutResult(
        subscribers=receivers,
        senders=senders,
        deliveries_per_s=deliveries / seconds,
        notes_per_s=deliveries / max(receivers, 1) / seconds,
        p50_ms=_ms(percentile(latencies, 0.50)),
        p99_ms=_ms(percentile(latencies, 0.99)),
        server_cpu_s_per_1000=1000 * server_cpu / deliveries if deliveries else None,
        server_cpu_pct=server_pct,
        generator_cpu_pct=generator_pct,
        notes_per_message=deliveries / recorder.messages if recorder.messages else None,
        acks_per_s=recorder.acks / seconds,
        latency_samples=len(latencies),
        undelivered=recorder.undelivered(),
        send_errors=dict(errors),
        streams_lost=receivers - audience.opened.alive(),
    )


@dataclass
class PacedResult:
    rate: float
    achieved_rate: float
    p50_ms: float | None
    p99_ms: float | None
    server_cpu_pct: float
    generator_cpu_pct: float
    latency_samples: int
    undelivered: int
    send_errors: dict[str, int]


async def paced(audience: Audience, senders: int, rate: float, sizes: Sizes, phase: str) -> PacedResult:
    """Open-loop senders at a fixed total rate; latency of the notes due in the measured window."""
    recorder = DeliveryRecorder(phase, audience.opened.alive())
    audience.tap.sink = recorder
    errors: Counter[str] = Counter()
    until = time.perf_counter_ns() + int((sizes.warmup_s + sizes.measure_s) * 1e9)
    sending = asyncio.create_task(
        paced_senders(audience.senders[:senders], audience.group, recorder, rate, until, errors)
    )
    try:
        await asyncio.sleep(sizes.warmup_s)
        meter = CpuMeter(audience.target.server.pid)
        recorder.latency_from_ns = time.perf_counter_ns()
        recorder.latency_until_ns = until
        sent = await sending
        _, server_pct, generator_pct = meter.stop()
        await _wait(recorder.drained, sizes.drain_timeout_s)
    finally:
        await cancel_all([sending])
        audience.tap.sink = None
    latencies = sorted(recorder.latencies_ns)
    return PacedResult(
        rate=rate,
        achieved_rate=sent / (sizes.warmup_s + sizes.measure_s),
        p50_ms=_ms(percentile(latencies, 0.50)),
        p99_ms=_ms(percentile(latencies, 0.99)),
        server_cpu_pct=server_pct,
        generator_cpu_pct=generator_pct,
        latency_samples=len(latencies),
        undelivered=recorder.undelivered(),
        send_errors=dict(errors),
    )


# -- 5: SendNote/s ------------------------------------------------------------------


@dataclass
class SendResult:
    senders: int
    notes_per_s: float
    server_cpu_pct: float
    server_cpu_us_per_note: float | None
    send_errors: dict[str, int]


async def send_rate(target: Target, group: str, sizes: Sizes) -> SendResult:
    """`send_senders` members each sending one note after another into a new group nobody reads."""
    writers = [f"{group}-s{i}" for i in range(sizes.send_senders)]
    metadata = await target.create_group(group, writers)
    return await send_rate_into(target, group, [metadata[w] for w in writers], sizes)


async def send_rate_into(
    target: Target, group: str, writers: list[targets.Metadata], sizes: Sizes
) -> SendResult:
    """The same, into an existing group (one that already holds a long history, say)."""
    connections = Connections(target.server.address, per_connection=1)
    errors: Counter[str] = Counter()
    try:
        senders = [Sender(connections.stub(), item) for item in writers]
        meter = CpuMeter(target.server.pid)
        sent = await send_for(senders, group, sizes.warmup_s, sizes.measure_s, errors)
        server_cpu, server_pct, _ = meter.stop()
    finally:
        await connections.close()
    per_note = 1e6 * server_cpu / sent.total if sent.total else None
    return SendResult(len(writers), sent.in_window / sent.seconds, server_pct, per_note, dict(errors))


DISK_PROBE_S = 1.0


def disk_commits_per_s(seconds: float = DISK_PROBE_S) -> float:
    """Commits a second this disk takes the way chatroom commits (SQLite in WAL mode with
    synchronous=FULL, one writer, a small row each): its fsync rate, the physical limit on
    durable commits. Blocking: run it in a thread."""
    with tempfile.TemporaryDirectory(prefix="chatroom-bench-disk-") as home:
        connection = sqlite3.connect(Path(home) / "probe.db", isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("CREATE TABLE notes (text BLOB)")
            row = (b"x" * TEXT_BYTES,)
            commits = 0
            started = now = time.perf_counter()
            while now - started < seconds:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("INSERT INTO notes VALUES (?)", row)
                connection.execute("COMMIT")
                commits += 1
                now = time.perf_counter()
            return commits / (now - started)
        finally:
            connection.close()


# -- 6: catch-up ----------------------------------------------------------------------


@dataclass
class Backlog:
    """A group holding `notes` notes that `readers` members (or streams) have not read."""

    target: Target
    group: str
    notes: int
    readers: list[targets.Metadata]
    writers: list[targets.Metadata]
    waiting: list[Subscriber] = field(default_factory=list)
    """Baseline only: streams subscribed before the backlog was sent, not yet reading."""
    connections: list[Connections] = field(default_factory=list)
    write_seconds: float = 0.0
    send_errors: dict[str, int] = field(default_factory=dict)

    async def close(self) -> None:
        for subscriber in self.waiting:
            await subscriber.close()
        for connections in self.connections:
            await connections.close()


async def write_backlog(target: Target, group: str, runs: int, sizes: Sizes) -> Backlog:
    """Chatroom: readers are members from the start (cursor 0), so every note is unread to them.
    Baseline: it has no storage, so readers subscribe first and the notes queue in its memory."""
    readers = [f"{group}-r{i}" for i in range(runs)]
    writers = [f"{group}-s{i}" for i in range(sizes.send_senders)]
    metadata = await target.create_group(group, readers + writers)
    backlog = Backlog(target, group, 0, [metadata[r] for r in readers], [metadata[w] for w in writers])
    if target.kind == "baseline":
        # No BDP probing: the client may not buffer megabytes of the backlog before the timer starts.
        waiting = Connections(target.server.address, per_connection=1, options=[("grpc.http2.bdp_probe", 0)])
        backlog.connections.append(waiting)
        opened = await open_subscribers(waiting, group, backlog.readers, Tap(), start_reading=False)
        if opened.refused:
            raise RuntimeError(f"baseline refused catch-up streams: {dict(opened.refused)}")
        backlog.waiting = opened.subscribers
    writers_connections = Connections(target.server.address, per_connection=1)
    backlog.connections.append(writers_connections)
    senders = [Sender(writers_connections.stub(), metadata[w]) for w in writers]
    errors: Counter[str] = Counter()
    backlog.write_seconds = await send_count(
        senders, group, sizes.catchup_notes, sizes.backlog_concurrency, errors
    )
    backlog.notes = sizes.catchup_notes
    backlog.send_errors = dict(errors)
    return backlog


@dataclass
class CatchupResult:
    notes: int
    received: int
    seconds: float
    notes_per_s: float
    server_cpu_pct: float
    complete: bool


async def catch_up(backlog: Backlog, run: int, sizes: Sizes) -> CatchupResult:
    """Times one reader from subscribing (chatroom) or starting to read (baseline) to its last note."""
    sink = CountingSink(backlog.notes)
    tap = Tap()
    tap.sink = sink
    meter = CpuMeter(backlog.target.server.pid)
    started = time.perf_counter_ns()
    connections = Connections(backlog.target.server.address, per_connection=1)
    subscriber: Subscriber | None = None
    try:
        if backlog.waiting:
            subscriber = backlog.waiting[run]
            subscriber.tap = tap
            subscriber.start_reading()
        else:
            subscriber = Subscriber(connections.channel(), backlog.group, backlog.readers[run], tap)
            refusal = await subscriber.open()
            if refusal is not None:
                raise RuntimeError(f"catch-up stream refused: {refusal}")
            subscriber.start_reading()
        complete = await _wait(sink.done, sizes.catchup_timeout_s)
        _, server_pct, _ = meter.stop()
    finally:
        if subscriber is not None:
            await subscriber.close()
        await connections.close()
    ended = sink.last_ns if complete else time.perf_counter_ns()
    seconds = (ended - started) / 1e9
    return CatchupResult(backlog.notes, sink.count, seconds, sink.count / seconds, server_pct, complete)


# -- 3, 4: idle sessions ----------------------------------------------------------------


@dataclass
class IdleResult:
    sessions: int
    accepted: int
    refused: dict[str, int]
    open_seconds: float
    idle_cpu_pct: float
    rss_before_bytes: int
    rss_after_bytes: int
    rss_per_session_bytes: float | None
    alive_at_end: int


async def idle_sessions(target: Target, sizes: Sizes) -> IdleResult:
    """On a fresh server: RSS with no session, then with `idle_sessions` open and silent; CPU meanwhile."""
    group = "idle"
    members = [f"idle-{i:05d}" for i in range(sizes.idle_sessions)]
    metadata = await target.create_group(group, members)
    connections = Connections(target.server.address)
    pid = target.server.pid
    # One session opened and closed first, so that what any first session sets up
    # (threads, connections, caches) is not billed to the thousand.
    warm = await open_subscribers(connections, group, [metadata[members[0]]], Tap())
    await warm.close()
    await asyncio.sleep(sizes.settle_s)
    rss_before = processes.rss_bytes(pid)
    opened = await open_subscribers(connections, group, [metadata[m] for m in members], Tap())
    try:
        await asyncio.sleep(sizes.settle_s)
        rss_after = processes.rss_bytes(pid)
        meter = CpuMeter(pid)
        await asyncio.sleep(sizes.idle_measure_s)
        _, idle_pct, _ = meter.stop()
        alive = opened.alive()
    finally:
        await opened.close()
        await connections.close()
    return IdleResult(
        sessions=sizes.idle_sessions,
        accepted=opened.accepted,
        refused=dict(opened.refused),
        open_seconds=opened.seconds,
        idle_cpu_pct=idle_pct,
        rss_before_bytes=rss_before,
        rss_after_bytes=rss_after,
        rss_per_session_bytes=(rss_after - rss_before) / opened.accepted if opened.accepted else None,
        alive_at_end=alive,
    )


# -- 7: most sessions -------------------------------------------------------------------


@dataclass
class SessionsResult:
    attempted: int
    accepted: int
    refused: dict[str, int]
    alive_after_hold: int
    ended: dict[str, int]
    open_seconds: float
    rss_bytes: int
    server_cpu_s_per_1000_opens: float
    server_running: bool
    burst_attempted: int
    burst_accepted: int
    burst_refused: dict[str, int]
    burst_seconds: float


async def most_sessions(target: Target, sizes: Sizes) -> SessionsResult:
    """On a fresh server: opens up to `max_sessions` streams (paced), holds them, counts survivors;
    then, once they are closed, opens `burst_sessions` all at once and counts refusals."""
    groups: list[tuple[str, list[targets.Metadata]]] = []
    for first in range(0, sizes.max_sessions, sizes.sessions_per_group):
        group = f"hold{first // sizes.sessions_per_group}"
        count = min(sizes.sessions_per_group, sizes.max_sessions - first)
        members = [f"{group}-{i:05d}" for i in range(count)]
        metadata = await target.create_group(group, members)
        groups.append((group, [metadata[m] for m in members]))
    connections = Connections(target.server.address)
    pid = target.server.pid
    opened: list[Opened] = []
    started = time.perf_counter()
    cpu_before = processes.cpu_seconds(pid)
    try:
        for group, group_metadata in groups:
            opened.append(await open_subscribers(connections, group, group_metadata, Tap()))
        open_seconds = time.perf_counter() - started
        cpu_opening = processes.cpu_seconds(pid) - cpu_before
        await asyncio.sleep(sizes.hold_s)
        running = target.server.running
        rss = processes.rss_bytes(pid) if running else 0
        accepted = sum(o.accepted for o in opened)
        refused: Counter[str] = sum((o.refused for o in opened), Counter())
        ended: Counter[str] = sum((o.ended() for o in opened), Counter())
        alive = sum(o.alive() for o in opened)
    finally:
        for batch in opened:
            await batch.close()
        await connections.close()
    burst = await _burst(target, groups, sizes)
    return SessionsResult(
        attempted=sizes.max_sessions,
        accepted=accepted,
        refused=dict(refused),
        alive_after_hold=alive,
        ended=dict(ended),
        open_seconds=open_seconds,
        rss_bytes=rss,
        server_cpu_s_per_1000_opens=1000 * cpu_opening / max(accepted, 1),
        server_running=running,
        burst_attempted=sizes.burst_sessions,
        burst_accepted=burst.accepted,
        burst_refused=dict(burst.refused),
        burst_seconds=burst.seconds,
    )


async def _burst(target: Target, groups: list[tuple[str, list[targets.Metadata]]], sizes: Sizes) -> Opened:
    """Every stream requested at once, as when all clients reconnect after a restart."""
    await wait_quiet(target.server.pid)
    connections = Connections(target.server.address)
    requests = [(group, item) for group, metadata in groups for item in metadata][: sizes.burst_sessions]
    started = time.perf_counter()
    parts = await asyncio.gather(
        *(open_subscribers(connections, group, [item], Tap()) for group, item in requests)
    )
    burst = Opened(seconds=time.perf_counter() - started)
    for part in parts:
        burst.subscribers += part.subscribers
        burst.refused += part.refused
    try:
        await burst.close()
    finally:
        await connections.close()
    return burst


async def wait_quiet(pid: int, below_pct: float = 5.0, timeout_s: float = 60.0) -> None:
    """Waits until the server is done with earlier work (e.g. ending thousands of streams)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        meter = CpuMeter(pid)
        await asyncio.sleep(0.5)
        if meter.stop()[1] < below_pct:
            return
