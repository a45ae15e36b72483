"""The replicas benchmark runs end to end at tiny sizes (a check of the script, not a speed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
def test_the_replicas_benchmark_reports_both_setups(postgres_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.replicas", "--postgres", postgres_url]
        + ["--subscribers", "4", "--senders", "1", "--runs", "1", "--seconds", "0.5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"1 replica on SQLite: +[\d,]+ deliveries/s", result.stdout), result.stdout
    assert re.search(r"2 replicas on PostgreSQL: +[\d,]+ deliveries/s +\(ratio \d", result.stdout), (
        result.stdout
    )
    assert "missing" not in result.stdout
