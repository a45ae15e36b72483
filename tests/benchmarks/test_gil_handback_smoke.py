"""`python -m benchmarks.gil_handback` runs end to end and prints its figures (never checks their size)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIGURE = re.compile(
    r"switch interval [\d.]+ ms: loop idle [\d,]+ commits/s, loop busy [\d,]+ commits/s, ratio [\d.]+"
)


def test_prints_idle_and_busy_commit_rates_for_both_switch_intervals() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.gil_handback", "--seconds", "0.2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and all(FIGURE.fullmatch(line) for line in lines), run.stdout
