"""chatctl cluster verify: proof, per client, that no note was lost or shown twice.

A console logs each note it shows as one line (clients/console.py) and appends
to the same log across its restarts, so its log is the record of what a member
saw. The server is the record of what should have been seen: the group's head,
the sender and text of every seq (ListNotes, read as the member) and each
member's unread count (ListUnread). A client is *whole* when the seqs in its
log are exactly the seqs that others sent to its group after its member's
cursor at the client's first subscribe, up to head, each once and in order,
and its member has nothing unread.

Where a client starts: the cursor at its first subscribe is known only before
it subscribes, so whoever starts a client for the first time writes the
member's cursor as the first line of its log (`record_first_cursor`; the
cluster's supervisor does, for a member's only session). The
cursor moves only by the acks of the member's own sessions, so for a member
with one client it is exactly where the stream began. A log without that line
is checked from its lowest note: a loss before the first note a client ever
showed cannot be seen then, and the report says which rule it used.

A note's text holds whatever a member typed, newlines included, so a line that
looks like a note proves nothing by itself: each note line is compared with the
server's note of that seq as the console renders it, the further lines of a
multi-line text are taken with it, and a note line that matches no note is
reported (by line number), never counted as shown. The head is read before the
logs, so notes that arrive meanwhile are left for the next run; unread counts
are read after them.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import grpc

from admin_cli.admin_api import AdminApi, explain_status, explained_errors, health_status
from admin_cli.output import err, fail, info, out, print_json, table
from chatroom.cluster.v1 import cluster_pb2
from chatroom.v1 import admin_pb2, admin_pb2_grpc, chat_pb2, chat_pb2_grpc
from clients.channel import ClientTls, blocking_channel
from clients.lines import NOTE_LINE, format_note
from clients.model import Note
from services.state_dir import read_secret

FIRST_START = re.compile(r"^\* first start after #(?P<cursor>\d+) ")
HISTORY_PAGE = 500
CALL_TIMEOUT_S = 10.0
QUIET_POLL_S = 0.25
QUIET_SETTLE_S = 1.0
"""Quiet: heads, unread counts and client logs unchanged for this long, and nothing unread."""


class StartRule(StrEnum):
    """How the report knows where a client's notes begin."""

    first_cursor = "cursor at first start"
    first_note = "first note shown"
    nothing_shown = "nothing shown"


@dataclass(frozen=True, slots=True)
class ClientLog:
    """A console client of the cluster and the log file(s) it appended to, oldest first."""

    name: str
    member: str
    group: str
    logs: Sequence[Path]


@dataclass(frozen=True, slots=True)
class GroupHistory:
    """What the server says was sent to a group, up to head_seq."""

    group: str
    head_seq: int
    notes: Mapping[int, Note]
    """seq → note; notes that retention deleted are absent."""


@dataclass(frozen=True, slots=True)
class LogReading:
    shown: list[int]
    """Seqs (up to head) of the notes the log shows, in log order."""
    mismatched_lines: list[int]
    """1-based numbers of note lines of the group that match no note the server has."""
    first_cursor: int | None


@dataclass(frozen=True, slots=True)
class ClientReport:
    name: str
    member: str
    group: str
    head_seq: int
    from_seq: int
    start: StartRule
    shown: int
    missing: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)
    """Shown though they were not for it: its member's own notes, or from before its start."""
    out_of_order: list[int] = field(default_factory=list)
    mismatched_lines: list[int] = field(default_factory=list)
    unread: int | None = None
    """None: the member is not in the group."""

    @property
    def ok(self) -> bool:
        wrong = (self.missing, self.duplicated, self.unexpected, self.out_of_order, self.mismatched_lines)
        return not any(wrong) and self.unread == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "member": self.member,
            "group": self.group,
            "head_seq": self.head_seq,
            "shown": self.shown,
            "missing": self.missing,
            "duplicated": self.duplicated,
            "unread": self.unread,
            "ok": self.ok,
            "from_seq": self.from_seq,
            "start": self.start.value,
            "unexpected": self.unexpected,
            "out_of_order": self.out_of_order,
            "mismatched_lines": self.mismatched_lines,
        }


def first_start_line(cursor: int) -> str:
    return f"* first start after #{cursor} (the member's cursor)"


def record_first_cursor(log: Path, cursor: int) -> None:
    """Writes the member's cursor as the log's first line, unless the client has run before."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as file:
        if file.tell() == 0:
            file.write(first_start_line(cursor) + "\n")


def log_lines(paths: Iterable[Path]) -> list[str]:
    """Complete lines of the logs, oldest first; a last line still being written is left out.

    Split on "\\n" only: the console writes nothing else as a line end, and a
    note's text may hold a carriage return."""
    lines: list[str] = []
    for path in paths:
        try:
            text = path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            continue
        lines.extend(text.split("\n")[:-1])
    return lines


def read_log(lines: Sequence[str], history: GroupHistory) -> LogReading:
    """The notes a client's log shows, each note line checked against the server's note."""
    shown: list[int] = []
    mismatched: list[int] = []
    first_cursor: int | None = None
    if lines and (marker := FIRST_START.match(lines[0])):
        first_cursor = int(marker["cursor"])
    index = 0
    while index < len(lines):
        match = NOTE_LINE.match(lines[index])
        index += 1
        if match is None or match["group"] != history.group:
            continue
        seq = int(match["seq"])
        if seq > history.head_seq:
            continue  # arrived after the head was read
        note = history.notes.get(seq)
        if note is None:
            shown.append(seq)  # deleted by retention: only its seq can be checked
            continue
        extra = _further_lines(note, match, lines, index)
        if extra is None:
            mismatched.append(index)
            continue
        shown.append(seq)
        index += extra
    return LogReading(shown, mismatched, first_cursor)


def _further_lines(note: Note, line: re.Match[str], lines: Sequence[str], after: int) -> int | None:
    """How many more lines the note takes, if the log shows this note as the console renders it."""
    first, *more = format_note(note).split("\n")
    rendered = NOTE_LINE.match(first)
    assert rendered is not None, first
    if (line["sender"], line["text"]) != (rendered["sender"], rendered["text"]):
        return None
    if list(lines[after : after + len(more)]) != more:
        return None
    return len(more)


def check_client(
    client: ClientLog, lines: Sequence[str], history: GroupHistory, unread: int | None
) -> ClientReport:
    """Whether one client showed exactly what it should have: the pure core of verify."""
    reading = read_log(lines, history)
    head = history.head_seq
    if reading.first_cursor is not None:
        start_after, start = reading.first_cursor, StartRule.first_cursor
    elif reading.shown:
        start_after, start = min(reading.shown) - 1, StartRule.first_note
    else:
        start_after, start = head, StartRule.nothing_shown
    notes = history.notes
    expected = {
        seq for seq in range(start_after + 1, head + 1) if seq in notes and notes[seq].sender != client.member
    }
    counts = Counter(reading.shown)
    unexpected = {
        seq for seq in counts if seq <= start_after or (seq in notes and notes[seq].sender == client.member)
    }
    highest = 0
    out_of_order: list[int] = []
    for seq in reading.shown:
        if seq < highest and counts[seq] == 1:
            out_of_order.append(seq)
        highest = max(highest, seq)
    return ClientReport(
        name=client.name,
        member=client.member,
        group=client.group,
        head_seq=head,
        from_seq=start_after + 1,
        start=start,
        shown=len(reading.shown),
        missing=sorted(expected - counts.keys()),
        duplicated=sorted(seq for seq, count in counts.items() if count > 1),
        unexpected=sorted(unexpected),
        out_of_order=out_of_order,
        mismatched_lines=reading.mismatched_lines,
        unread=unread,
    )


@dataclass(frozen=True, slots=True)
class ServerAccess:
    """How verify reaches the cluster: its replicas, the admin token, the members' tokens."""

    servers: Sequence[str]
    admin_token: str
    home: Path
    """The state directory holding tokens/<member>.token."""
    tls: ClientTls | None = None

    def serving(self) -> str:
        """A replica whose health says SERVING (the first one when none does: its error explains)."""
        return next((s for s in self.servers if health_status(s, tls=self.tls) == "SERVING"), self.servers[0])

    def admin(self) -> AdminApi:
        return AdminApi(self.serving(), self.admin_token, self.tls)

    def member_token(self, member: str) -> str | None:
        return read_secret(self.home / "tokens" / f"{member}.token")


def fetch_history(access: ServerAccess, group: str, member: str) -> GroupHistory:
    """The group's head, then every note up to it that the server keeps, read as a member."""
    with access.admin() as api:
        head = api.get_group(group).head_seq
    token = access.member_token(member)
    if token is None:
        fail(f"no token for {member} in {access.home / 'tokens'}: verify reads {group}'s notes as {member}")
    notes: dict[int, Note] = {}
    if head == 0:
        return GroupHistory(group, head, notes)
    server = access.serving()
    with blocking_channel(server, access.tls) as channel, explained_errors(server):
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        before, more = head + 1, True
        while more:
            request = chat_pb2.ListNotesRequest(group=group, before_seq=before, limit=HISTORY_PAGE)
            page = stub.ListNotes(request, metadata=_bearer(token), timeout=CALL_TIMEOUT_S)
            notes.update((proto.seq, Note.from_proto(proto)) for proto in page.notes)
            more = page.has_more and bool(page.notes)
            before = min((proto.seq for proto in page.notes), default=before)
    return GroupHistory(group, head, notes)


def fetch_unread(access: ServerAccess, group: str) -> dict[str, int]:
    with access.admin() as api:
        return {m.member: m.unread_count for m in api.list_unread(group).members}


def record_first_start(access: ServerAccess, client: ClientLog) -> None:
    """To be called before a client starts: on its first start, its member's cursor heads its log."""
    with access.admin() as api:
        members = {m.member: m.last_acked_seq for m in api.list_unread(client.group).members}
    if client.member in members:
        record_first_cursor(client.logs[-1], members[client.member])


def of_cluster(status: cluster_pb2.GetStatusResponse) -> tuple[ServerAccess, list[ClientLog]]:
    """What verify needs of a running cluster, from its supervisor's GetStatus."""
    admin_token = read_secret(Path(status.admin_token_path))
    if admin_token is None:
        fail(f"no admin token at {status.admin_token_path}: is the cluster up?")
    access = ServerAccess(status.servers.split(","), admin_token, Path(status.home))
    clients = [
        ClientLog(p.name, p.member, p.group, [Path(p.log_path)])
        for p in status.processes
        if p.kind == "client"
    ]
    return access, clients


def _quiet_snapshot(access: ServerAccess, clients: Sequence[ClientLog]) -> tuple[object, bool] | None:
    """(what may still change, whether nothing is unread), or None while no replica answers."""
    server = access.serving()
    deliveries: dict[str, tuple[int, dict[str, int]]] = {}
    with blocking_channel(server, access.tls) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        for group in sorted({client.group for client in clients}):
            try:
                delivery = stub.ListUnread(
                    admin_pb2.ListUnreadRequest(group=group),
                    metadata=_bearer(access.admin_token),
                    timeout=CALL_TIMEOUT_S,
                )
            except grpc.RpcError as error:
                if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return None  # a replica going down or coming up: ask again
                fail(explain_status(error.code(), error.details() or "", server))
            deliveries[group] = (delivery.head_seq, {m.member: m.unread_count for m in delivery.members})
    sizes = tuple(sum(_size(path) for path in client.logs) for client in clients)
    settled = all(deliveries[c.group][1].get(c.member) == 0 for c in clients)
    return (deliveries, sizes), settled


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def wait_for_quiet(access: ServerAccess, clients: Sequence[ClientLog], timeout_s: float) -> bool:
    """Waits until no one sends and every client has shown all: False if that took longer than timeout_s.

    Unread 0 alone is not enough: a second session of a member may still be
    printing what the first acked, so the logs must also stop growing."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    since = time.monotonic()
    while True:
        snapshot = _quiet_snapshot(access, clients)
        now = time.monotonic()
        if snapshot is None or snapshot[0] != last:
            last, since = (None if snapshot is None else snapshot[0]), now
        elif snapshot[1] and now - since >= QUIET_SETTLE_S:
            return True
        if now > deadline:
            return False
        time.sleep(QUIET_POLL_S)


def _bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def fetch_histories(access: ServerAccess, readers: Mapping[str, str]) -> dict[str, GroupHistory]:
    """Each group's history, read as the member that readers names for it."""
    return {group: fetch_history(access, group, member) for group, member in readers.items()}


def verify(
    access: ServerAccess, clients: Sequence[ClientLog], histories: Mapping[str, GroupHistory] | None = None
) -> list[ClientReport]:
    """Checks every client: heads and histories first (unless given), then the logs, then unread counts."""
    readers = {client.group: client.member for client in clients}
    if histories is None:
        histories = fetch_histories(access, readers)
    lines = {client.name: log_lines(client.logs) for client in clients}
    unread = {group: fetch_unread(access, group) for group in readers}
    return [
        check_client(
            client, lines[client.name], histories[client.group], unread[client.group].get(client.member)
        )
        for client in clients
    ]


def verify_json(reports: Sequence[ClientReport]) -> dict[str, Any]:
    return {"ok": all(r.ok for r in reports), "clients": [r.as_json() for r in reports]}


def seq_ranges(seqs: Sequence[int]) -> str:
    """#4, #7-#9: a list of seqs a person can read."""
    spans: list[list[int]] = []
    for seq in sorted(seqs):
        if spans and seq == spans[-1][1] + 1:
            spans[-1][1] = seq
        else:
            spans.append([seq, seq])
    return ", ".join(f"#{a}" if a == b else f"#{a}-#{b}" for a, b in spans)


def problems(report: ClientReport) -> list[str]:
    """What is wrong with one client, in words, with the exact seqs."""
    found = [
        f"{what} {seq_ranges(seqs)}"
        for what, seqs in (
            ("missing", report.missing),
            ("duplicated", report.duplicated),
            ("shown though not for it", report.unexpected),
            ("out of order", report.out_of_order),
        )
        if seqs
    ]
    if report.mismatched_lines:
        lines = ", ".join(map(str, report.mismatched_lines))
        found.append(f"note lines that match no note of {report.group}: line {lines} of its log")
    if report.unread is None:
        found.append(f"{report.member} is not a member of {report.group}")
    elif report.unread:
        found.append(f"{report.unread} unread")
    return found


def print_reports(reports: Sequence[ClientReport], as_json: bool) -> bool:
    """Prints the per-client table (or JSON) and, for each client that is not whole, why; True if all are."""
    if as_json:
        print_json(verify_json(reports))
        return all(r.ok for r in reports)
    columns = ("CLIENT", "MEMBER", "GROUP", "HEAD", "FROM", "SHOWN", "MISSING", "DUPLICATED", "UNREAD", "")
    rows = [
        (
            r.name,
            r.member,
            r.group,
            r.head_seq,
            f"#{r.from_seq}" + ("" if r.start is StartRule.first_cursor else "*"),
            r.shown,
            len(r.missing),
            len(r.duplicated),
            "-" if r.unread is None else r.unread,
            "whole" if r.ok else "NOT WHOLE",
        )
        for r in reports
    ]
    out.print(table(None, columns, rows))
    if any(r.start is not StartRule.first_cursor for r in reports):
        info("* from the first note its log shows (no cursor recorded at its first start)")
    for report in reports:
        if not report.ok:
            err.print(f"{report.name}: " + "; ".join(problems(report)), markup=False)
    whole = all(r.ok for r in reports)
    if whole:
        info(f"every client is whole ({len(reports)} checked)")
    return whole
