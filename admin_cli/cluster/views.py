"""How `chatctl cluster ps` shows processes: the JSON of DESIGN §9, and a table built from it."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from admin_cli.output import duration, table
from chatroom.cluster.v1 import cluster_pb2


def process_json(process: cluster_pb2.Process) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": process.name,
        "kind": process.kind,
        "state": process.state,
        "pid": process.pid or None,
        "restarts": process.restarts,
        "uptime_s": process.uptime_s,
    }
    if process.kind in ("server", "storage"):
        entry["address"] = process.address
    if process.kind == "server":
        entry["sessions"] = process.sessions
        entry["health"] = process.health
    if process.kind == "client":
        entry["member"] = process.member
        entry["group"] = process.group
        entry["cursor"] = process.cursor if process.HasField("cursor") else None
        entry["unread"] = process.unread if process.HasField("unread") else None
        entry["last_note"] = process.last_note or None
    entry["last_exit"] = process.last_exit or None
    if process.state == "backoff":
        entry["retry_in_s"] = process.retry_in_s
    entry["log"] = process.log_path
    return entry


def status_json(status: cluster_pb2.GetStatusResponse) -> dict[str, Any]:
    return {"cluster": status.cluster, "processes": [process_json(p) for p in status.processes]}


def _state(entry: dict[str, Any]) -> str:
    if entry["state"] == "backoff":
        return f"backoff ({entry['retry_in_s']:.1f} s)"
    if entry["state"] in ("exited", "failed") and entry["last_exit"]:
        return f"{entry['state']} ({entry['last_exit']})"
    return str(entry["state"])


def _delivery(entry: dict[str, Any]) -> str:
    if entry["kind"] == "server":
        return f"{entry['health']}, {entry['sessions']} sessions"
    if entry["kind"] == "client":
        if entry["cursor"] is None:
            return "cursor ?, unread ?"
        return f"cursor {entry['cursor']}, unread {entry['unread']}"
    return ""


def status_table(status: cluster_pb2.GetStatusResponse) -> Table:
    entries = status_json(status)["processes"]
    rows = [
        (
            e["name"],
            _state(e),
            e["pid"] or "-",
            duration(e["uptime_s"]) if e["pid"] else "-",
            e["restarts"],
            e.get("address") or e.get("group"),
            _delivery(e),
            e.get("last_note") or "",
        )
        for e in entries
    ]
    columns = ("NAME", "STATE", "PID", "UPTIME", "RESTARTS", "ADDRESS/GROUP", "DELIVERY", "LAST NOTE")
    return table(f"cluster {status.cluster}", columns, rows)
