"""The console's output lines, which chatctl, the cluster supervisor and the tests read back.

    [team #3 12:00:01] bob: hello      a note received
    * sent #4: hi bob                  a note this member sent
    * not sent (reason): hi bob        a note the server refused
    * notes 1–15 were deleted ...      notes retention deleted before they were read
    * subscribed to team on ...        connection events, each change once
    * waiting: the server at ... is not answering: ...
    error: ...                         why the console stopped

Kept apart from the console itself so that readers of these lines load no gRPC.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from clients.display import visible

if TYPE_CHECKING:
    from clients.model import Gap, Note

SUBSCRIBED_PREFIX = "* subscribed to "
LOST_PREFIX = "* connection lost "
WAITING_PREFIX = "* waiting: "
"""Said once when the console cannot subscribe (nothing answers, say), not at every retry."""
ERROR_PREFIX = "error: "
NOTE_LINE = re.compile(
    r"^\[(?P<group>[a-z0-9][a-z0-9_-]*) #(?P<seq>\d+) \d\d:\d\d:\d\d\]"
    r" (?P<sender>[a-z0-9][a-z0-9_-]*): (?P<text>.*)$"
)
"""A note line as format_note writes it."""


def format_note(note: Note) -> str:
    """One line whatever the text holds: controls and line breaks are shown as escapes."""
    clock = note.sent_at.astimezone().strftime("%H:%M:%S")
    return f"[{visible(note.group)} #{note.seq} {clock}] {visible(note.sender)}: {visible(note.text)}"


def format_gap(gap: Gap) -> str:
    """Says in one line which notes this member will never see, and why."""
    if gap.first_seq == gap.last_seq:
        lost = f"note {gap.first_seq} was deleted before you read it"
    else:
        lost = f"notes {gap.first_seq}–{gap.last_seq} were deleted before you read them"
    return f"* {lost} ({visible(gap.reason)})" if gap.reason else f"* {lost}"


def last_shown(log: Path, group: str) -> int:
    """The highest seq of the group that a console logged to this file.

    Each note line is written at once, so the log is the console's memory of
    what it has shown: a console restarted after a crash resumes after it
    instead of showing a note twice."""
    try:
        with open(log, errors="replace") as lines:
            seqs = [int(m["seq"]) for line in lines if (m := NOTE_LINE.match(line)) and m["group"] == group]
    except FileNotFoundError:
        return 0
    return max(seqs, default=0)
