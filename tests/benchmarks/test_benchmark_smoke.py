"""`python -m benchmarks --quick` runs end to end and writes every figure for both servers.

This checks that the benchmark works, never how fast anything is: timing goals
live in the benchmark's own output, not in tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
FAMILIES = {
    "fanout",
    "cpu_per_delivery",
    "idle_cpu",
    "rss_per_session",
    "send_rate",
    "catchup",
    "max_sessions",
    "paced_latency",
}


@pytest.mark.slow
def test_quick_run_reports_every_figure_for_both_servers(tmp_path: Path) -> None:
    out = tmp_path / "results" / "quick.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"results: {out}" in run.stdout

    results = json.loads(out.read_text())
    assert results["meta"]["complete"] is True
    figures = results["figures"]
    assert {figure["family"] for figure in figures.values()} == FAMILIES
    for figure_id, figure in figures.items():
        for kind in ("chatroom", "baseline"):
            assert figure[kind] is not None, f"{figure_id}: no {kind} value"
            assert len(figure["runs"][kind]) == 1, figure_id
        assert "ratio" in figure
    senders = {figure_id.split(".")[2] for figure_id in figures if figure_id.startswith("fanout.")}
    assert senders == {"s1", "s4"}

    for server in results["meta"]["servers"]:
        assert not _is_running(server["pid"], server["kind"]), f"{server} still running"


def _is_running(pid: int, kind: str) -> bool:
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
    return ("admin_cli" if kind == "chatroom" else "benchmarks.baseline_server") in cmdline
