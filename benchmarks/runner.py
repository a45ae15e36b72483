"""The benchmark's order of play: which server runs when, for how many runs, into which figure.

Runs rotate among the servers (and which goes first), so that noise on a
shared machine lands on all of them. The ceiling takes part where it means
something: fan-out and paced latency; for durable sends the disk is measured
in its place, just before each chatroom run. Fan-out, SendNote and catch-up use one
long-lived server of each kind; idle sessions and the most-sessions figure get
a fresh server per run, so their memory is not what earlier figures left.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict

import grpc

from benchmarks import cores, figures, servers, targets
from benchmarks.report import Results, medians
from benchmarks.settings import Sizes
from benchmarks.targets import KINDS, Target

Log = Callable[[str], None]


STAGES = ("fanout", "send_rate", "catchup", "sessions")
"""What --only may choose: fan-out (with paced latency), SendNote/s, catch-up (with
SendNote/s into its large group), idle and most sessions."""
SERVERS_WITH_STORAGE = ("chatroom", "baseline")
"""Where the ceiling has no figure of its own (sends, catch-up, sessions)."""


def _order(run: int, kinds: Sequence[str] = KINDS) -> Iterator[str]:
    """Each run starts with the next server in turn."""
    first = run % len(kinds)
    return iter((*kinds[first:], *kinds[:first]))


def _git(*args: str) -> str | None:
    """Read-only git plumbing (no index refresh, nothing written)."""
    try:
        return subprocess.run(
            ["git", *args], cwd=servers.REPO, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _meta(sizes: Sizes, placement: cores.Placement, quick: bool) -> dict[str, object]:
    changed = _git("diff-index", "--name-only", "HEAD", "--")
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _git("rev-parse", "HEAD"),
        "changed_since_commit": None if changed is None else changed.splitlines(),
        "code_fingerprint": _code_fingerprint(),
        "quick": quick,
        "runs": sizes.runs,
        "sizes": asdict(sizes),
        "placement": (
            f"generator on CPU {placement.generator_core}, servers on CPU {placement.server_core}"
            if placement.pinned
            else f"not pinned ({placement.cpus} CPU)"
        ),
        "cpus": placement.cpus,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "fsync_ms": _fsync_ms(),
        "chatroom_env": servers.CHATROOM_LIMITS,
        "python": sys.version.split()[0],
        "grpc": grpc.__version__,
        "platform": platform.platform(),
        "complete": False,
    }


def _fsync_ms(samples: int = 20) -> float:
    """Median fsync time where chatroom's database lives: its SendNote waits for one per commit,
    so a busy disk on a shared machine shows here first."""
    with tempfile.NamedTemporaryFile(prefix="chatroom-bench-fsync-") as probe:
        times = []
        for _ in range(samples):
            probe.write(b"x" * 4096)
            probe.flush()
            started = time.perf_counter()
            os.fsync(probe.fileno())
            times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 3)


SERVER_CODE = ("services", "admin_cli", "protos")


def _code_fingerprint() -> str:
    """Paths, sizes and mtimes of the server's source: cheap, and changes with any edit."""
    digest = hashlib.sha256()
    for top in SERVER_CODE:
        for path in sorted((servers.REPO / top).rglob("*.py")):
            stat = path.stat()
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _check_code_unchanged(results: Results) -> None:
    """Servers started late in the run load the code as it is then: say so if it moved."""
    commit = _git("rev-parse", "HEAD")
    fingerprint = _code_fingerprint()
    results.meta["commit_at_end"] = commit
    results.meta["code_fingerprint_at_end"] = fingerprint
    if fingerprint != results.meta["code_fingerprint"] or commit != results.meta["commit"]:
        results.warn(
            f"the server's source changed during the run (commit {results.meta['commit']} -> {commit});"
            " servers started after the change ran different code"
        )


def prepare(sizes: Sizes, quick: bool) -> tuple[cores.Placement, Results]:
    """Pins this process (the load generator) before any gRPC thread exists."""
    placement = cores.plan_placement()
    cores.pin(os.getpid(), placement.generator_core)
    return placement, Results(_meta(sizes, placement, quick))


async def run(
    placement: cores.Placement,
    sizes: Sizes,
    results: Results,
    log: Log,
    stages: Sequence[str] = STAGES,
) -> None:
    """Fills `results` figure by figure; what is there stays there if a later step fails."""
    live: dict[str, Target] = {}
    results.meta["stages"] = list(stages)
    try:
        long_lived = KINDS if "fanout" in stages else SERVERS_WITH_STORAGE
        if {"fanout", "send_rate", "catchup"} & set(stages):
            for kind in long_lived:
                live[kind] = await targets.start(kind, placement.server_core)
                log(f"{kind} server: pid {live[kind].server.pid} on {live[kind].server.address}")
        if "fanout" in stages:
            await _fanout(live, sizes, results, log)
        if "send_rate" in stages:
            await _send_rate(live, sizes, results, log)
        if "catchup" in stages:
            await _catchup(live, sizes, results, log)
        for target in list(live.values()):
            await target.close()
        live.clear()
        if "sessions" in stages:
            await _fresh_servers(placement, sizes, results, log)
        results.meta["complete"] = True
    finally:
        for target in live.values():
            try:
                await target.close()
            except Exception as error:  # keep stopping the others
                log(f"stopping {target.kind}: {error}")
        await servers.stop_all()
        results.meta["servers"] = servers.started
        results.meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _check_code_unchanged(results)


async def _fanout(live: dict[str, Target], sizes: Sizes, results: Results, log: Log) -> None:
    """Figures 1, 2 and 8: one group of N readers per server, kept open for every run at that N."""
    most_senders = max(sizes.fanout_senders)
    for n in sizes.fanout_subscribers:
        audiences: dict[str, figures.Audience] = {}
        try:
            for kind, target in live.items():
                audience = audiences[kind] = await figures.open_audience(target, f"fan{n}", n, most_senders)
                opened = audience.opened
                results.detail(
                    f"fanout.n{n}.open",
                    kind,
                    {"accepted": opened.accepted, "refused": dict(opened.refused), "seconds": opened.seconds},
                )
                refused = f", REFUSED {dict(opened.refused)}" if opened.refused else ""
                if opened.refused:
                    results.warn(f"{kind} refused {dict(opened.refused)} of {n} fan-out subscribers")
                log(f"{kind}: {opened.accepted}/{n} subscribers open in {opened.seconds:.1f} s{refused}")
            for senders in sizes.fanout_senders:
                for run in range(sizes.runs):
                    for kind in _order(run):
                        phase = f"f{n}s{senders}r{run}{kind[:2]}"
                        result = await figures.fanout(audiences[kind], senders, sizes, phase)
                        _add_fanout(results, kind, n, senders, result)
                        where = f"fan-out N={n}, {senders} sender(s), run {run + 1}, {kind}"
                        _warn_problems(results, where, result.send_errors, result.undelivered)
                        if result.streams_lost:
                            results.warn(f"{where}: {result.streams_lost} subscriber streams ended")
                        log(
                            f"fan-out N={n} senders={senders} run {run + 1} {kind}: "
                            f"{result.deliveries_per_s:,.0f} deliveries/s, p99 {result.p99_ms} ms, "
                            f"server CPU {result.server_cpu_pct:.0f}%, generator CPU "
                            f"{result.generator_cpu_pct:.0f}%"
                            + (f", undelivered {result.undelivered}" if result.undelivered else "")
                            + (f", send errors {result.send_errors}" if result.send_errors else "")
                        )
                label = f"fan-out N={n}, {senders} sender(s)"
                _warn_generator_bound(results, f"fanout.n{n}.s{senders}", label)
            if n == sizes.paced_subscribers:
                await _paced(audiences, n, most_senders, sizes, results, log)
        finally:
            for audience in audiences.values():
                await audience.close()


GENERATOR_BOUND_PCT = 90.0


def _warn_problems(results: Results, where: str, send_errors: dict[str, int], undelivered: int) -> None:
    if send_errors:
        results.warn(f"{where}: SendNote failed {send_errors}")
    if undelivered:
        results.warn(f"{where}: {undelivered:,} deliveries missing after the drain timeout")


def _warn_generator_bound(results: Results, prefix: str, label: str) -> None:
    figure = results.figures.get(f"{prefix}.generator_cpu_pct")
    if figure is None:
        return
    for kind in KINDS:
        busy = figure.median(kind)
        if busy is not None and busy >= GENERATOR_BOUND_PCT:
            results.warn(
                f"{label}, {kind}: the load generator was {busy:.0f}% busy, so this throughput is"
                " a lower bound for the server"
            )


def _add_fanout(results: Results, kind: str, n: int, senders: int, result: figures.FanoutResult) -> None:
    label = f"N={n}, {senders} sender{'s' if senders > 1 else ''}"
    key = f"n{n}.s{senders}"
    results.add(
        f"fanout.{key}.deliveries_per_s",
        kind,
        result.deliveries_per_s,
        family="fanout",
        title=f"{label}: deliveries/s",
        unit="deliveries/s",
        better="higher",
    )
    for name, value in (("p50", result.p50_ms), ("p99", result.p99_ms)):
        results.add(
            f"fanout.{key}.{name}_ms",
            kind,
            value,
            family="fanout",
            title=f"{label}: {name} latency ms",
            unit="ms",
            better="lower",
        )
    results.add(
        f"cpu_per_delivery.{key}",
        kind,
        result.server_cpu_s_per_1000,
        family="cpu_per_delivery",
        title=f"{label}: server CPU-s / 1,000 deliveries",
        unit="CPU-s",
        better="lower",
    )
    for name, value, title, unit in (
        ("server_cpu_pct", result.server_cpu_pct, "server CPU % (100 = one core busy)", "%"),
        ("generator_cpu_pct", result.generator_cpu_pct, "generator CPU % (100 = one core busy)", "%"),
        ("notes_per_message", result.notes_per_message, "notes per stream message", "notes"),
        ("acks_per_s", result.acks_per_s, "acks/s from all readers", "acks/s"),
    ):
        results.add(
            f"fanout.{key}.{name}",
            kind,
            value,
            family="fanout",
            title=f"{label}: {title}",
            unit=unit,
            better="info",
        )
    results.detail(f"fanout.{key}", kind, asdict(result))


async def _paced(
    audiences: dict[str, figures.Audience],
    n: int,
    senders: int,
    sizes: Sizes,
    results: Results,
    log: Log,
) -> None:
    saturation = medians(results.figures[f"fanout.n{n}.s{senders}.deliveries_per_s"].runs["chatroom"])
    if not saturation:
        log("paced latency skipped: chatroom delivered nothing at saturation")
        return
    rate = saturation / audiences["chatroom"].opened.alive() / 2
    note = (
        f"{rate:,.1f} notes/s ({rate * n:,.0f} deliveries/s) = half of chatroom's closed-loop rate"
        f" at N={n}, {senders} senders; senders open-loop, latency from each note's due time"
    )
    for run in range(sizes.runs):
        for kind in _order(run):
            result = await figures.paced(audiences[kind], senders, rate, sizes, f"p{n}r{run}{kind[:2]}")
            for name, value in (("p50", result.p50_ms), ("p99", result.p99_ms)):
                results.add(
                    f"paced_latency.n{n}.s{senders}.{name}_ms",
                    kind,
                    value,
                    family="paced_latency",
                    title=f"N={n}, {senders} senders, {rate:,.0f} notes/s: {name} latency ms",
                    unit="ms",
                    better="lower",
                    note=note if name == "p99" else "",
                )
            results.detail(f"paced_latency.n{n}.s{senders}", kind, asdict(result))
            _warn_problems(
                results, f"paced N={n}, run {run + 1}, {kind}", result.send_errors, result.undelivered
            )
            if result.generator_cpu_pct >= GENERATOR_BOUND_PCT:
                results.warn(
                    f"paced N={n}, run {run + 1}, {kind}: generator CPU {result.generator_cpu_pct:.0f}%,"
                    " its latency includes the generator's own queueing"
                )
            log(
                f"paced N={n} at {rate:,.1f} notes/s run {run + 1} {kind}: p50 {result.p50_ms} ms, "
                f"p99 {result.p99_ms} ms, server CPU {result.server_cpu_pct:.0f}%"
            )


async def _send_rate(live: dict[str, Target], sizes: Sizes, results: Results, log: Log) -> None:
    """Figure 5: each run in a group of its own, so no run inherits another's table size much.
    The disk is measured just before each chatroom run: its commits/s times the notes one
    commit can hold (one per closed-loop sender) is what durable sends can reach at best."""
    title = f"{sizes.send_senders} senders, no subscribers"
    for run in range(sizes.runs):
        for kind in _order(run, SERVERS_WITH_STORAGE):
            if kind == "chatroom":
                commits_per_s = await asyncio.to_thread(figures.disk_commits_per_s)
                results.add(
                    "send_rate.disk_commits_per_s",
                    "ceiling",
                    commits_per_s,
                    family="send_rate",
                    title="this disk: SQLite commits/s (WAL, synchronous=FULL, one writer)",
                    unit="commits/s",
                    better="reference",
                )
                results.add(
                    "send_rate.notes_per_s",
                    "ceiling",
                    commits_per_s * sizes.send_senders,
                    family="send_rate",
                    title=f"{title}: SendNote/s",
                    unit="notes/s",
                    better="higher",
                )
                log(f"disk before run {run + 1}: {commits_per_s:,.0f} commits/s")
            result = await figures.send_rate(live[kind], f"send{run}", sizes)
            results.add(
                "send_rate.notes_per_s",
                kind,
                result.notes_per_s,
                family="send_rate",
                title=f"{title}: SendNote/s",
                unit="notes/s",
                better="higher",
                note=(
                    "chatroom: each note committed to SQLite (fsynced) before the reply; baseline: in"
                    f" memory; ceiling: the disk's commits/s x {sizes.send_senders} notes per commit"
                    " (one per closed-loop sender)"
                ),
            )
            results.add(
                "send_rate.cpu_us_per_note",
                kind,
                result.server_cpu_us_per_note,
                family="send_rate",
                title=f"{title}: server CPU-us per SendNote",
                unit="CPU-us",
                better="lower",
            )
            results.detail("send_rate", kind, asdict(result))
            _warn_problems(results, f"SendNote/s run {run + 1}, {kind}", result.send_errors, 0)
            log(
                f"SendNote/s run {run + 1} {kind}: {result.notes_per_s:,.0f}, server CPU"
                f" {result.server_cpu_pct:.0f}%, {result.server_cpu_us_per_note or 0:,.0f} us per note"
            )


async def _catchup(live: dict[str, Target], sizes: Sizes, results: Results, log: Log) -> None:
    """Figure 6: one backlog per server, written once; each run reads it with a reader of its own."""
    backlogs: dict[str, figures.Backlog] = {}
    try:
        for kind in SERVERS_WITH_STORAGE:
            backlog = backlogs[kind] = await figures.write_backlog(live[kind], "catchup", sizes.runs, sizes)
            results.detail(
                "catchup.backlog",
                kind,
                {
                    "notes": backlog.notes,
                    "write_seconds": backlog.write_seconds,
                    "send_errors": backlog.send_errors,
                },
            )
            log(f"{kind}: {backlog.notes:,} notes of backlog written in {backlog.write_seconds:.1f} s")
        for run in range(sizes.runs):
            for kind in _order(run, SERVERS_WITH_STORAGE):
                result = await figures.catch_up(backlogs[kind], run, sizes)
                results.add(
                    "catchup.notes_per_s",
                    kind,
                    result.notes_per_s if result.complete else None,
                    family="catchup",
                    title=f"a member {sizes.catchup_notes:,} notes behind: notes/s received",
                    unit="notes/s",
                    better="higher",
                    note=(
                        "chatroom reads the backlog from SQLite; the baseline has no storage, so its"
                        " figure is how fast it pushes the same notes queued in memory to one reader"
                    ),
                )
                results.detail("catchup", kind, asdict(result))
                if not result.complete:
                    results.warn(
                        f"catch-up run {run + 1}, {kind}: only {result.received:,} of {result.notes:,}"
                        f" notes within {sizes.catchup_timeout_s:g} s"
                    )
                log(
                    f"catch-up run {run + 1} {kind}: {result.received:,} notes in {result.seconds:.1f} s"
                    + ("" if result.complete else " (INCOMPLETE)")
                )
        for run in range(sizes.runs):
            for kind in _order(run, SERVERS_WITH_STORAGE):
                backlog = backlogs[kind]
                sent = await figures.send_rate_into(backlog.target, backlog.group, backlog.writers, sizes)
                results.add(
                    "send_rate.large_group.notes_per_s",
                    kind,
                    sent.notes_per_s,
                    family="send_rate",
                    title=f"the same into a group holding {sizes.catchup_notes:,}+ notes: SendNote/s",
                    unit="notes/s",
                    better="higher",
                    note="every send carries a client_msg_id, as the client library's do",
                )
                results.detail("send_rate.large_group", kind, asdict(sent))
                _warn_problems(results, f"SendNote/s into a large group, {kind}", sent.send_errors, 0)
                log(f"SendNote/s into the backlog group run {run + 1} {kind}: {sent.notes_per_s:,.0f}")
    finally:
        for backlog in backlogs.values():
            await backlog.close()


async def _fresh_servers(placement: cores.Placement, sizes: Sizes, results: Results, log: Log) -> None:
    """Figures 3, 4 and 7, each run on servers started for it."""
    for run in range(sizes.runs):
        for kind in _order(run, SERVERS_WITH_STORAGE):
            target = await targets.start(kind, placement.server_core)
            try:
                idle = await figures.idle_sessions(target, sizes)
            finally:
                await target.close()
            _add_idle(results, kind, idle, sizes)
            if idle.refused or idle.alive_at_end < idle.accepted:
                results.warn(
                    f"idle sessions run {run + 1}, {kind}: refused {idle.refused},"
                    f" {idle.accepted - idle.alive_at_end} ended while idle"
                )
            log(
                f"idle run {run + 1} {kind}: {idle.accepted}/{idle.sessions} sessions, CPU "
                f"{idle.idle_cpu_pct:.2f}%, RSS/session {idle.rss_per_session_bytes} B"
                + (f", REFUSED {idle.refused}" if idle.refused else "")
            )
            target = await targets.start(kind, placement.server_core)
            try:
                most = await figures.most_sessions(target, sizes)
            finally:
                await target.close()
            _add_sessions(results, kind, most, sizes)
            if most.refused or most.ended or not most.server_running:
                results.warn(
                    f"most sessions run {run + 1}, {kind}: {most.accepted:,}/{most.attempted:,} accepted,"
                    f" refused {most.refused}, ended while held {most.ended},"
                    f" server {'running' if most.server_running else 'DEAD'}"
                )
            if most.burst_refused:
                results.warn(
                    f"burst run {run + 1}, {kind}: {most.burst_attempted - most.burst_accepted:,} of"
                    f" {most.burst_attempted:,} streams opened at once were refused {most.burst_refused}"
                )
            log(
                f"sessions run {run + 1} {kind}: {most.accepted}/{most.attempted} accepted, "
                f"{most.alive_after_hold} still open, RSS {most.rss_bytes / 2**20:.0f} MiB"
                + (f", REFUSED {most.refused}" if most.refused else "")
                + (f", ENDED {most.ended}" if most.ended else "")
                + f"; burst: {most.burst_accepted}/{most.burst_attempted} accepted"
                + (f", REFUSED {most.burst_refused}" if most.burst_refused else "")
            )


def _add_idle(results: Results, kind: str, idle: figures.IdleResult, sizes: Sizes) -> None:
    results.add(
        "idle_cpu.pct",
        kind,
        idle.idle_cpu_pct,
        family="idle_cpu",
        title=f"{sizes.idle_sessions:,} idle sessions: server CPU % over {sizes.idle_measure_s:g} s",
        unit="%",
        better="lower",
    )
    per_session = idle.rss_per_session_bytes
    results.add(
        "rss_per_session.kib",
        kind,
        None if per_session is None else per_session / 1024,
        family="rss_per_session",
        title=f"RSS per idle session (KiB), {sizes.idle_sessions:,} sessions",
        unit="KiB",
        better="lower",
    )
    results.detail("idle", kind, asdict(idle))


def _add_sessions(results: Results, kind: str, most: figures.SessionsResult, sizes: Sizes) -> None:
    results.add(
        "max_sessions.accepted",
        kind,
        most.accepted,
        family="max_sessions",
        title=f"streams accepted of {sizes.max_sessions:,} tried",
        unit="sessions",
        better="higher",
    )
    results.add(
        "max_sessions.alive",
        kind,
        most.alive_after_hold,
        family="max_sessions",
        title=f"still open after {sizes.hold_s:g} s",
        unit="sessions",
        better="higher",
    )
    results.add(
        "max_sessions.rss_mib",
        kind,
        most.rss_bytes / 2**20,
        family="max_sessions",
        title="server RSS holding them (MiB)",
        unit="MiB",
        better="lower",
    )
    results.add(
        "max_sessions.open_cpu_s_per_1000",
        kind,
        most.server_cpu_s_per_1000_opens,
        family="max_sessions",
        title="server CPU-s per 1,000 streams opened",
        unit="CPU-s",
        better="lower",
    )
    results.add(
        "max_sessions.burst_accepted",
        kind,
        most.burst_accepted,
        family="max_sessions",
        title=f"streams accepted of {sizes.burst_sessions:,} opened at once",
        unit="sessions",
        better="higher",
        note="unpaced burst; refusals are in details.max_sessions[].burst_refused",
    )
    results.detail("max_sessions", kind, asdict(most))


async def main(
    placement: cores.Placement, sizes: Sizes, results: Results, log: Log, stages: Sequence[str] = STAGES
) -> None:
    """Runs the stages; SIGTERM cancels like Ctrl-C does, so the servers are stopped either way."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await run(placement, sizes, results, log, stages)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
