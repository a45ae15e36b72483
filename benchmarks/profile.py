"""Where the chatroom server spends its time under fan-out load, sampled with py-spy.

    python -m benchmarks.profile [--subscribers 100] [--senders 4] [--seconds 20] [--out FILE]

Starts the chatroom server as the benchmark does, drives closed-loop fan-out
at N subscribers, and records the server with py-spy (not a project
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
from benchmarks.settings import FULL

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "profile-fanout.txt"
_LINE_NUMBER = re.compile(r":\d+\)$")


def find_py_spy() -> str:
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("py-spy not found: pip install py-spy (it is not a project dependency)")
    return found


async def record(
    subscribers: int, senders: int, seconds: float, out: Path, native: bool
) -> figures.FanoutResult:
    py_spy = find_py_spy()
    placement = cores.plan_placement()
    cores.pin(os.getpid(), placement.generator_core)
    out.parent.mkdir(parents=True, exist_ok=True)
    target = await targets.start("chatroom", placement.server_core)
    spy: asyncio.subprocess.Process | None = None
    audience: figures.Audience | None = None
    try:
        audience = await figures.open_audience(target, "profile", subscribers, senders)
        sizes = replace(FULL, warmup_s=1.0, measure_s=seconds + 1.0)
        load = asyncio.create_task(figures.fanout(audience, senders, sizes, "profile"))
        await asyncio.sleep(sizes.warmup_s)
        argv = ["record", "--pid", str(target.server.pid), "--duration", str(int(seconds))]
        argv += ["--rate", "250", "--format", "raw", "--output", str(out)]
        # Native frames show gRPC's Cython and C code (otherwise folded into its Python caller),
        # but need the target paused at each sample; without them py-spy need not pause it.
        argv.append("--native" if native else "--nonblocking")
        spy = await asyncio.create_subprocess_exec(py_spy, *argv, stdout=asyncio.subprocess.DEVNULL)
        if await spy.wait() != 0:
            raise SystemExit(f"py-spy failed (exit {spy.returncode})")
        return await load
    finally:
        if spy is not None and spy.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                spy.kill()
            await spy.wait()
        if audience is not None:
            await audience.close()
        await target.close()
        await servers.stop_all()


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
    if "concurrent/futures/thread.py" in stack:
        return "worker threads (SQLite)"
    return "other threads (gRPC's completion-queue poller)"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--native", action="store_true", help="include C/Cython frames (py-spy --native)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="collapsed stacks (flamegraph input)")
    args = parser.parse_args()
    result = asyncio.run(record(args.subscribers, args.senders, args.seconds, args.out, args.native))
    print(
        f"load: N={result.subscribers}, {result.senders} senders:"
        f" {result.deliveries_per_s:,.0f} deliveries/s, server CPU {result.server_cpu_pct:.0f}%,"
        f" generator CPU {result.generator_cpu_pct:.0f}%"
    )
    print(summarize(args.out, args.top))
    print(f"\ncollapsed stacks: {args.out}")


if __name__ == "__main__":
    main()
