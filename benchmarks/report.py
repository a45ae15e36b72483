"""Figures across runs: medians, ratios to the references, the printed table and the JSON file.

Two references stand beside chatroom: the baseline (a minimal fan-out server
whose readers ack as chatroom's do) and the ceiling (the physical limit: for
fan-out the same server with server-streaming readers that never ack, the pure
gRPC ceiling; for durable sends the disk's own commit rate).

The JSON keeps every run's value and the details behind it (refusals, errors,
CPU of both sides), keyed by stable figure ids, so two commits' files can be
compared figure by figure.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("chatroom", "baseline", "ceiling")

FAMILIES = {
    "fanout": "1. fan-out: deliveries/s and send-to-receive latency",
    "cpu_per_delivery": "2. server CPU-seconds per 1,000 deliveries",
    "idle_cpu": "3. server CPU with idle subscribed sessions",
    "rss_per_session": "4. resident memory per idle session",
    "send_rate": "5. SendNote/s, concurrent senders, no subscribers (ceiling: the disk's limit)",
    "catchup": "6. catch-up of a member far behind",
    "max_sessions": "7. most concurrent sessions one process holds",
    "paced_latency": "8. latency at half of chatroom's saturation rate (paced senders)",
}


@dataclass
class Figure:
    id: str
    family: str
    title: str
    unit: str
    better: str
    """"higher" or "lower": which way is good, to read the ratio; "reference": a figure
    of a reference alone; "info": shown only as a note under the figure it explains."""
    runs: dict[str, list[float | None]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    note: str = ""

    def median(self, kind: str) -> float | None:
        values = [v for v in self.runs[kind] if v is not None]
        return statistics.median(values) if values else None

    @property
    def ratio(self) -> float | None:
        """chatroom / baseline."""
        return self.ratio_to("baseline")

    @property
    def ceiling_ratio(self) -> float | None:
        """chatroom / ceiling."""
        return self.ratio_to("ceiling")

    def ratio_to(self, kind: str) -> float | None:
        chatroom, reference = self.median("chatroom"), self.median(kind)
        if chatroom is None or reference is None or reference == 0:
            return None
        return chatroom / reference


class Results:
    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta
        self.figures: dict[str, Figure] = {}
        self.details: dict[str, dict[str, list[Any]]] = {}
        self.warnings: list[str] = []
        """What a reader of the figures must know: refusals, errors, lost notes, a saturated generator."""

    def add(
        self,
        figure_id: str,
        kind: str,
        value: float | None,
        *,
        family: str,
        title: str,
        unit: str,
        better: str,
        note: str = "",
    ) -> None:
        figure = self.figures.get(figure_id)
        if figure is None:
            figure = self.figures[figure_id] = Figure(figure_id, family, title, unit, better, note=note)
        figure.runs[kind].append(value)
        if note:
            figure.note = note

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def detail(self, key: str, kind: str, value: Any) -> None:
        self.details.setdefault(key, {k: [] for k in KINDS})[kind].append(value)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "figures": {
                figure.id: {
                    "family": figure.family,
                    "title": figure.title,
                    "unit": figure.unit,
                    "better": figure.better,
                    "chatroom": figure.median("chatroom"),
                    "baseline": figure.median("baseline"),
                    "ratio": figure.ratio,
                    "ceiling": figure.median("ceiling"),
                    "ceiling_ratio": figure.ceiling_ratio,
                    "runs": figure.runs,
                    "note": figure.note,
                }
                for figure in self.figures.values()
            },
            "warnings": self.warnings,
            "details": self.details,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n")

    def table(self) -> str:
        runs = self.meta.get("runs")
        lines = [
            f"chatroom vs in-run references: median of {runs} run(s); ratio = chatroom / the column before",
            "baseline: minimal grpc.aio fan-out, readers ack like chatroom's; ceiling: the same with"
            " server-streaming readers that never ack (pure gRPC), or for durable sends the disk's limit",
            f"placement: {self.meta.get('placement')}; load average at start: {self.meta.get('loadavg')};"
            f" fsync of the database directory: {self.meta.get('fsync_ms')} ms (p50)",
            f"chatroom limits lifted for the load generator: {self.meta.get('chatroom_env')}",
        ]
        width = max([len(f.title) for f in self.figures.values()] + [40])
        header = (
            f"{'figure':<{width}}  {'chatroom':>12}  {'baseline':>12}  {'ratio':>7}"
            f"  {'ceiling':>12}  {'ratio':>7}  better"
        )
        for family, heading in FAMILIES.items():
            members = [f for f in self.figures.values() if f.family == family]
            if not members:
                continue
            lines += ["", heading, header, "-" * len(header)]
            for figure in members:
                if figure.better == "info":
                    continue  # shown as a note under the figure it explains
                lines.append(
                    f"{figure.title:<{width}}  {_number(figure.median('chatroom')):>12}"
                    f"  {_number(figure.median('baseline')):>12}  {_ratio(figure.ratio):>7}"
                    f"  {_number(figure.median('ceiling')):>12}  {_ratio(figure.ceiling_ratio):>7}"
                    f"  {figure.better}"
                )
                lines += [f"    {note}" for note in self._load_notes(figure.id)]
                if figure.note:
                    lines.append(f"    {figure.note}")
        if self.warnings:
            lines += ["", "warnings:"] + [f"  - {warning}" for warning in self.warnings]
        return "\n".join(lines)

    def _load_notes(self, figure_id: str) -> list[str]:
        """Beside a throughput: which side was the bottleneck, and what crossed the wire."""
        prefix, _, name = figure_id.rpartition(".")
        if name != "deliveries_per_s":
            return []

        def by_kind(figure_name: str) -> dict[str, str]:
            figure = self.figures.get(f"{prefix}.{figure_name}")
            values = {kind: figure.median(kind) for kind in KINDS} if figure else {}
            return {kind: _number(value) for kind, value in values.items() if value is not None}

        server, generator = by_kind("server_cpu_pct"), by_kind("generator_cpu_pct")
        per_message, acks = by_kind("notes_per_message"), by_kind("acks_per_s")
        notes = []
        if server:
            sides = (
                f"{kind} server {server[kind]}% / generator {generator[kind]}%"
                for kind in server
                if kind in generator
            )
            notes.append("CPU (% of one core): " + "; ".join(sides))
        if per_message:
            notes.append(
                "notes per message: "
                + "; ".join(f"{kind} {value}" for kind, value in per_message.items())
                + " · acks/s: "
                + "; ".join(f"{kind} {value}" for kind, value in acks.items())
            )
        return notes


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def medians(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None
