"""The delivery core's settings, each declared once with its unit, default and limits.

A field declared with `setting()` is an operator's option: chatctl derives
`chatctl server start --max-unacked N` (and CHATROOM_MAX_UNACKED) from it, the
cluster file accepts it by name, and the value is checked here, where it is
defined, whoever builds it. A trailing `_s` names seconds and is not part of
the flag.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?")
_SECONDS = {"ms": 0.001, "s": 1, "": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in `90`, `90s`, `15m`, `12h`, `30d`, `2w` or `1h30m`."""
    compact = text.strip().lower().replace(" ", "")
    if not re.fullmatch(f"(?:{_DURATION_PART.pattern})+", compact):
        raise ValueError(f"{text!r} is not a duration: use a number with s, m, h, d or w, such as 30d")
    return sum(float(number) * _SECONDS[unit] for number, unit in _DURATION_PART.findall(compact))


def setting(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    panel: str = "",
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field that is also an operator's option (see the module docstring)."""
    metadata = {"help": help, "min": min, "panel": panel, "parse": parse, "metavar": metavar}
    return field(default=default, metadata=metadata)


def check_settings(value: object) -> None:
    """Refuses values below their declared minimum (None means "off" and is always allowed)."""
    for each in fields(value):  # type: ignore[arg-type]
        least = each.metadata.get("min")
        current = getattr(value, each.name)
        if least is not None and current is not None and current < least:
            raise ValueError(f"{each.name} must be at least {least:g}, not {current}")


LIMITS = "Limits"
RETENTION = "History and retention"


@dataclass(frozen=True, slots=True)
class ChatroomSettings:
    max_text_bytes: int = setting(4096, "Longest note, in bytes of UTF-8.", min=1, panel=LIMITS)
    max_unacked: int = setting(
        1000,
        "Notes a session may be sent beyond its member's cursor before it waits for acks.",
        min=1,
        panel=LIMITS,
    )
    max_sessions_per_member: int = setting(
        16, "Open streams one member may hold on one server (unsubscribed ones count).", min=1, panel=LIMITS
    )
    notes_per_second: float = setting(
        20.0, "Average notes a member may send a second.", min=0.01, panel=LIMITS
    )
    note_burst: int = setting(
        40, "Notes a member may send at once before the rate applies.", min=1, panel=LIMITS
    )
    max_group_members: int = setting(1000, "Members per group.", min=1, panel=LIMITS)
    max_groups: int = setting(10_000, "Groups per server.", min=1, panel=LIMITS)
    subscribe_timeout_s: float = setting(
        10.0, "Seconds a new stream has to send its subscribe.", min=0.1, panel=LIMITS
    )
    ack_flush_interval_s: float = setting(
        0.05, "Seconds an ack may wait in memory before it is written.", min=0.001, panel=LIMITS
    )
    retention_age_s: float | None = setting(
        None,
        "Delete notes older than this (e.g. 30d) once no member has them unread. Default: keep.",
        min=1,
        panel=RETENTION,
        parse=parse_duration,
        metavar="DURATION",
    )
    retention_notes: int | None = setting(
        None,
        "Keep the newest N notes per group; delete older ones once no member has them unread.",
        min=1,
        panel=RETENTION,
    )
    retention_max_notes: int | None = setting(
        None,
        "Keep at most N notes per group, whatever readers have read: the disk stays bounded,"
        " and a member whose unread notes go is told so.",
        min=1,
        panel=RETENTION,
    )
    session_queue_limit: int = 1024
    """Live notes buffered per session; past it the session reads from storage."""
    retention_interval_s: float = 1.0
    """How often retention looks for notes to delete."""

    def __post_init__(self) -> None:
        check_settings(self)

    @property
    def retains(self) -> bool:
        return any(
            v is not None for v in (self.retention_age_s, self.retention_notes, self.retention_max_notes)
        )
