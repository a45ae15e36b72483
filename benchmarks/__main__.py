"""Benchmark the chatroom server against a minimal fan-out server, side by side.

    python -m benchmarks [--quick] [--runs N] [--out FILE.json]

Starts the real chatroom server (`python -m admin_cli server start`, SQLite in
a temporary state directory) and the in-run baseline
(`python -m benchmarks.baseline_server`) as child processes, drives both from
one asyncio/grpc.aio load generator (pinned to one CPU, the servers to
another, when there are two or more), prints a table of figures with the
ratio chatroom/baseline, and writes every figure and run to FILE.json
(default benchmarks/results/latest.json). Ratios, not absolute numbers, are
what to compare between commits: both servers share the machine's noise.

--quick: small sizes and one run, a smoke check that takes about half a minute.
--runs N: each figure is the median of N runs (default 3; 1 with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
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
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON file (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.runs is not None:
        if args.runs < 1:
            parser.error("--runs must be at least 1")
        sizes = type(sizes)(**{**_fields(sizes), "runs": args.runs})
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    placement, results = runner.prepare(sizes, args.quick)
    try:
        asyncio.run(runner.main(placement, sizes, results, log))
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


def _fields(sizes: object) -> dict[str, object]:
    from dataclasses import asdict, is_dataclass

    assert is_dataclass(sizes) and not isinstance(sizes, type)
    return asdict(sizes)


if __name__ == "__main__":
    sys.exit(main())
