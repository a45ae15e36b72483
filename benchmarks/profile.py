"""Where the chatroom server spends its time under fan-out load, sampled with py-spy.

    python -m benchmarks.profile [--load fanout|send] [--subscribers 100] [--senders 4]
                                 [--seconds 20] [--out FILE]

Starts the chatroom server as the benchmark does, drives closed-loop fan-out
at N subscribers (or closed-loop durable SendNote calls), and records the server with py-spy (not a project
dependency: `pip install py-spy`) in collapsed-stack form, then prints the
functions with the most samples, by self time and including callees. The
numbers in the benchmark say how much; this says where.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

from benchmarks import cores, figures, servers, targets
from benchmarks.settings import FULL, Sizes

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "profile-fanout.txt"
_LINE_NUMBER = re.compile(r":\d+\)$")


def find_py_spy() -> str:
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("py-spy not found: pip install py-spy (it is not a project dependency)")
    return found


async def record(load: str, subscribers: int, senders: int, seconds: float, out: Path, native: bool) -> str:
    """Profiles the server under one load, "fanout" or "send"; returns the load's own figures."""
    py_spy = find_py_spy()
    placement = cores.plan_placement()
    cores.pin(os.getpid(), placement.generator_core)
    out.parent.mkdir(parents=True, exist_ok=True)
    target = await targets.start("chatroom", placement.server_core)
    sizes = replace(FULL, warmup_s=1.0, measure_s=seconds + 1.0, send_senders=senders)
    spy: asyncio.subprocess.Process | None = None
    audience: figures.Audience | None = None
    try:
        if load == "fanout":
            audience = await figures.open_audience(target, "profile", subscribers, senders)
            driven = asyncio.create_task(_fanout(audience, senders, sizes))
        else:
            driven = asyncio.create_task(_sends(target, sizes))
        await asyncio.sleep(sizes.warmup_s)
        argv = ["record", "--pid", str(target.server.pid), "--duration", str(int(seconds))]
        argv += ["--rate", "250", "--format", "raw", "--output", str(out)]
        # Native frames show gRPC's Cython and C code (otherwise folded into its Python caller),
        # but need the target paused at each sample; without them py-spy need not pause it.
        argv.append("--native" if native else "--nonblocking")
        spy = await asyncio.create_subprocess_exec(py_spy, *argv, stdout=asyncio.subprocess.DEVNULL)
        if await spy.wait() != 0:
            raise SystemExit(f"py-spy failed (exit {spy.returncode})")
        return await driven
    finally:
        if spy is not None and spy.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                spy.kill()
            await spy.wait()
        if audience is not None:
            await audience.close()
        await target.close()
        await servers.stop_all()


async def _fanout(audience: figures.Audience, senders: int, sizes: Sizes) -> str:
    result = await figures.fanout(audience, senders, sizes, "profile")
    return (
        f"load: N={result.subscribers}, {result.senders} senders:"
        f" {result.deliveries_per_s:,.0f} deliveries/s, server CPU {result.server_cpu_pct:.0f}%,"
        f" generator CPU {result.generator_cpu_pct:.0f}%"
    )


async def _sends(target: targets.Target, sizes: Sizes) -> str:
    result = await figures.send_rate(target, "profile", sizes)
    return (
        f"load: {result.senders} closed-loop senders: {result.notes_per_s:,.0f} SendNote/s,"
        f" server CPU {result.server_cpu_pct:.0f}%, {result.server_cpu_us_per_note or 0:.0f} us a note"
    )


def summarize(collapsed: Path, top: int) -> str:
    """Top functions by self samples and by inclusive samples, from py-spy's raw format."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_LINE_NUMBER.sub(")", frame) for frame in stack.split(";")]
        total += count
        threads[_thread_of(stack)] += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples"
    lines = [f"{total:,} samples of the server on CPU", "", "by thread:"]
    lines += [f"  {100 * n / total:5.1f}%  {thread}" for thread, n in threads.most_common()]
    lines += ["", "self time (the function itself; C and Cython code counts as its Python caller):"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "including callees (chatroom's own code):"]
    ours = [(frame, n) for frame, n in inclusive.most_common() if "services/" in frame]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in ours[:top]]
    return "\n".join(lines)


def _thread_of(stack: str) -> str:
    if "run_forever" in stack:
        return "event loop (servicers, delivery core, gRPC's Cython callbacks)"
    if "storage/threads.py" in stack:
        return "worker threads (SQLite)"
    return "other threads (gRPC's completion-queue poller)"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--load", choices=("fanout", "send"), default="fanout")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--native", action="store_true", help="include C/Cython frames (py-spy --native)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="collapsed stacks (flamegraph input)")
    args = parser.parse_args()
    print(asyncio.run(record(args.load, args.subscribers, args.senders, args.seconds, args.out, args.native)))
    print(summarize(args.out, args.top))
    print(f"\ncollapsed stacks: {args.out}")


if __name__ == "__main__":
    main()
