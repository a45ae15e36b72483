"""How long chatctl takes to print its help, against an older tree of chatroom.

    python -m benchmarks.cli_start OLD_TREE [--runs N]

OLD_TREE is a checkout (e.g. `git worktree add --detach /tmp/old COMMIT`), run
through PYTHONPATH; this tree is the one installed. Runs alternate old and new,
from a directory outside both, so that they share the machine's noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INVOCATIONS: tuple[list[str], ...] = (["--help"], ["client", "--help"], [])
"""With no arguments chatctl prints its help too."""


def seconds(args: list[str], env: dict[str, str], cwd: str) -> float:
    """Every invocation prints help (bare chatctl exits 2 as it does so); anything else is a failed run."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "admin_cli", *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if "Usage" not in done.stdout:
        raise SystemExit(f"chatctl {' '.join(args)} printed no help (exit {done.returncode}): {done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_tree", type=Path)
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()
    new_env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    old = options.old_tree.resolve()
    old_env = {**new_env, "PYTHONPATH": f"{old}{os.pathsep}{old / 'protos'}"}
    with tempfile.TemporaryDirectory() as cwd:
        for args in INVOCATIONS:
            times: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(options.runs):
                times["old"].append(seconds(args, old_env, cwd))
                times["new"].append(seconds(args, new_env, cwd))
            old_s, new_s = (statistics.median(times[tree]) for tree in ("old", "new"))
            command = " ".join(["chatctl", *args])
            print(f"{command:<22} old {old_s:.3f} s  new {new_s:.3f} s  new/old {new_s / old_s:.2f}")


if __name__ == "__main__":
    main()
