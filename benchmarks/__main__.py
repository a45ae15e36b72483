"""Benchmark the chatroom server against a minimal fan-out server, side by side.

    python -m benchmarks [--quick] [--runs N] [--only STAGE,...] [--readers N,...] [--out FILE.json]

Starts the real chatroom server (`python -m admin_cli server start`, SQLite in
a temporary state directory) and the in-run references (`python -m
benchmarks.baseline_server`: the baseline, whose readers ack as chatroom's do,
and the pure gRPC ceiling, whose readers use a server-streaming call and never
ack) as child processes, drives them from one asyncio/grpc.aio load generator
(pinned to one CPU, the servers to another, when there are two or more),
prints a table of figures with the ratios chatroom/baseline and
chatroom/ceiling, and writes every figure and run to FILE.json (default
benchmarks/results/latest.json). Ratios, not absolute numbers, are what to
compare between commits: all servers share the machine's noise.

--quick: small sizes and one run, a smoke check that takes about half a minute.
--runs N: each figure is the median of N runs (default 3; 1 with --quick).
--only: some of the stages fanout, send_rate, catchup, sessions (default: all).
--readers: the fan-out sizes (default 10,100,1000; paced latency runs at 100 if chosen).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import replace
from pathlib import Path

from benchmarks import runner
from benchmarks.settings import FULL, QUICK

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Benchmark chatroom against a minimal fan-out baseline."
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and one run (a smoke check)")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure; the median is reported")
    parser.add_argument(
        "--only", default=",".join(runner.STAGES), help=f"stages to run, of {','.join(runner.STAGES)}"
    )
    parser.add_argument("--readers", default=None, help="fan-out sizes, e.g. 100,1000")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON file (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    stages = [stage.strip() for stage in args.only.split(",") if stage.strip()]
    unknown = sorted(set(stages) - set(runner.STAGES))
    if unknown or not stages:
        parser.error(f"--only takes some of {','.join(runner.STAGES)}, not {args.only!r}")
    if args.runs is not None:
        if args.runs < 1:
            parser.error("--runs must be at least 1")
        sizes = replace(sizes, runs=args.runs)
    if args.readers is not None:
        try:
            readers = tuple(int(n) for n in args.readers.split(","))
        except ValueError:
            parser.error(f"--readers takes numbers such as 100,1000, not {args.readers!r}")
        if not readers or min(readers) < 1:
            parser.error("--readers must name at least one size of 1 or more")
        sizes = replace(sizes, fanout_subscribers=readers)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    placement, results = runner.prepare(sizes, args.quick)
    try:
        asyncio.run(runner.main(placement, sizes, results, log, stages))
    except BaseException as error:
        results.meta["error"] = f"{type(error).__name__}: {error}"
        results.write(args.out)
        log(f"stopped early ({results.meta['error']}); partial results in {args.out}")
        if isinstance(error, KeyboardInterrupt | asyncio.CancelledError):
            return 130
        raise
    results.write(args.out)
    print(results.table())
    print(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
