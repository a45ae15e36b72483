"""`python -m benchmarks --quick` runs end to end and writes every figure for every server.

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
def test_quick_run_reports_every_figure_for_every_server(tmp_path: Path) -> None:
    out = tmp_path / "results" / "quick.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"results: {out}" in run.stdout

    results = json.loads(out.read_text())
    assert results["meta"]["complete"] is True
    figures = results["figures"]
    assert {figure["family"] for figure in figures.values()} == FAMILIES
    for figure_id, figure in figures.items():
        if figure["better"] == "reference":
            kinds: tuple[str, ...] = ("ceiling",)
        elif figure["family"] in {"fanout", "cpu_per_delivery", "paced_latency"}:
            kinds = ("chatroom", "baseline", "ceiling")
        else:
            kinds = ("chatroom", "baseline")
        for kind in kinds:
            assert figure[kind] is not None, f"{figure_id}: no {kind} value"
            assert len(figure["runs"][kind]) == 1, figure_id
        assert "ratio" in figure and "ceiling_ratio" in figure
    for figure_id in ("send_rate.notes_per_s", "send_rate.disk_commits_per_s"):
        assert figures[figure_id]["ceiling"] > 0, f"{figure_id}: the disk's limit is missing"
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
