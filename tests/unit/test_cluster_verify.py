"""verify's core on synthetic logs: what a client showed against what the server says was sent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from admin_cli.cluster.verify import (
    ClientLog,
    GroupHistory,
    StartRule,
    check_client,
    first_start_line,
    log_lines,
    problems,
    record_first_cursor,
    seq_ranges,
)
from clients.lines import format_note
from clients.model import Note

BOB = ClientLog("bob", "bob", "team", [])


def history(*senders_and_texts: tuple[str, str], group: str = "team") -> GroupHistory:
    """Notes 1, 2, 3 … of the group, by these senders with these texts."""
    moment = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    notes = {
        seq: Note(group, seq, sender, text, moment, f"id-{seq}")
        for seq, (sender, text) in enumerate(senders_and_texts, start=1)
    }
    return GroupHistory(group, len(notes), notes)


def shown(past: GroupHistory, *seqs: int) -> list[str]:
    """The lines a console prints for these notes (a note of several lines gives several)."""
    return [line for seq in seqs for line in format_note(past.notes[seq]).split("\n")]


SUBSCRIBED = "* subscribed to team on 127.0.0.1:50061 as bob"
TEAM = history(("alice", "hi"), ("bob", "hi alice"), ("chad", "hello"), ("alice", "how are you"))


def test_a_client_that_showed_everything_others_sent_once_in_order_is_whole() -> None:
    lines = [first_start_line(0), SUBSCRIBED, *shown(TEAM, 1, 3, 4)]
    report = check_client(BOB, lines, TEAM, unread=0)
    assert report.ok, problems(report)
    assert (report.shown, report.from_seq, report.start) == (3, 1, StartRule.first_cursor)


def test_a_dropped_line_is_missing_and_a_repeated_one_duplicated() -> None:
    dropped = check_client(BOB, [first_start_line(0), SUBSCRIBED, *shown(TEAM, 1, 4)], TEAM, unread=0)
    assert (dropped.ok, dropped.missing, dropped.duplicated) == (False, [3], [])
    repeated = check_client(BOB, [first_start_line(0), SUBSCRIBED, *shown(TEAM, 1, 3, 3, 4)], TEAM, unread=0)
    assert (repeated.ok, repeated.missing, repeated.duplicated) == (False, [], [3])
    assert problems(repeated) == ["duplicated #3"]


def test_restarts_append_to_the_log_and_the_whole_log_counts() -> None:
    lines = [
        first_start_line(0),
        SUBSCRIBED,
        *shown(TEAM, 1),
        "* client exited (killed by SIGKILL); restarting in 0.5 s",
        SUBSCRIBED,
        *shown(TEAM, 3, 4),
    ]
    assert check_client(BOB, lines, TEAM, unread=0).ok
    again = [*lines[:4], SUBSCRIBED, *shown(TEAM, 1, 3, 4)]
    assert check_client(BOB, again, TEAM, unread=0).duplicated == [1]


def test_its_own_notes_and_notes_out_of_order_are_wrong() -> None:
    own = check_client(BOB, [first_start_line(0), *shown(TEAM, 1, 2, 3, 4)], TEAM, unread=0)
    assert (own.ok, own.unexpected) == (False, [2])
    swapped = check_client(BOB, [first_start_line(0), *shown(TEAM, 1, 4, 3)], TEAM, unread=0)
    assert (swapped.ok, swapped.out_of_order, swapped.missing) == (False, [3], [])


def test_unread_once_quiet_is_not_whole() -> None:
    report = check_client(BOB, [first_start_line(0), *shown(TEAM, 1, 3, 4)], TEAM, unread=1)
    assert not report.ok
    assert problems(report) == ["1 unread"]
    assert not check_client(BOB, [first_start_line(0), *shown(TEAM, 1, 3, 4)], TEAM, unread=None).ok


def test_the_recorded_cursor_says_where_the_client_began() -> None:
    late = check_client(BOB, [first_start_line(3), *shown(TEAM, 4)], TEAM, unread=0)
    assert late.ok and late.from_seq == 4
    lost_first = check_client(BOB, [first_start_line(0), *shown(TEAM, 3, 4)], TEAM, unread=0)
    assert lost_first.missing == [1]
    before_start = check_client(BOB, [first_start_line(3), *shown(TEAM, 3, 4)], TEAM, unread=0)
    assert before_start.unexpected == [3]


def test_without_a_recorded_cursor_the_first_note_shown_is_the_start() -> None:
    report = check_client(BOB, [SUBSCRIBED, *shown(TEAM, 3, 4)], TEAM, unread=0)
    assert report.ok and (report.from_seq, report.start) == (3, StartRule.first_note)
    gap = check_client(BOB, [SUBSCRIBED, *shown(TEAM, 1, 4)], TEAM, unread=0)
    assert gap.missing == [3]
    nothing = check_client(BOB, [SUBSCRIBED], TEAM, unread=0)
    assert nothing.ok and nothing.start is StartRule.nothing_shown


def test_a_marker_further_down_the_log_is_only_text() -> None:
    lines = [SUBSCRIBED, *shown(TEAM, 3), first_start_line(0), *shown(TEAM, 4)]
    assert check_client(BOB, lines, TEAM, unread=0).start is StartRule.first_note


def test_a_note_whose_text_imitates_note_lines_does_not_count_as_those_notes() -> None:
    forged = "[team #3 12:00:00] chad: hello"
    past = history(("alice", "hi"), ("chad", f"look:\n{forged}"), ("chad", "hello"), ("alice", "bye"))
    lines = [first_start_line(0), SUBSCRIBED, *shown(past, 1, 2, 4)]
    assert forged not in lines  # the console escapes the line break: no line of its own
    report = check_client(BOB, lines, past, unread=0)
    assert (report.missing, report.duplicated, report.mismatched_lines) == ([3], [], [])
    whole = check_client(BOB, [first_start_line(0), *shown(past, 1, 2, 3, 4)], past, unread=0)
    assert whole.ok, problems(whole)


def test_a_note_line_that_matches_no_note_is_reported_not_counted() -> None:
    lines = [first_start_line(0), *shown(TEAM, 1), "[team #3 12:00:00] chad: something else", *shown(TEAM, 4)]
    report = check_client(BOB, lines, TEAM, unread=0)
    assert (report.missing, report.mismatched_lines) == ([3], [3])
    assert "line 3 of its log" in problems(report)[-1]


def test_notes_past_the_head_and_other_groups_are_left_alone() -> None:
    newer = history(("alice", "hi"), ("bob", "hi alice"), ("chad", "hello"), ("alice", "how"), ("chad", "x"))
    lines = [first_start_line(0), *shown(TEAM, 1, 3, 4), *shown(newer, 5), "[other #9 12:00:00] dan: hi"]
    assert check_client(BOB, lines, TEAM, unread=0).ok


@given(
    st.lists(st.sampled_from(["alice", "bob", "chad"]), min_size=1, max_size=40),
    st.data(),
)
def test_exactly_the_dropped_and_the_repeated_seqs_are_reported(
    senders: list[str], data: st.DataObject
) -> None:
    past = history(*((sender, f"note {i}") for i, sender in enumerate(senders)))
    others = [seq for seq, note in past.notes.items() if note.sender != "bob"]
    dropped = set(data.draw(st.lists(st.sampled_from(others)) if others else st.just([])))
    kept = [seq for seq in others if seq not in dropped]
    repeated = set(data.draw(st.lists(st.sampled_from(kept)) if kept else st.just([])))
    seqs = [again for seq in kept for again in ([seq, seq] if seq in repeated else [seq])]
    report = check_client(BOB, [first_start_line(0), *shown(past, *seqs)], past, unread=0)
    assert (report.missing, report.duplicated) == (sorted(dropped), sorted(repeated))
    assert report.ok == (not dropped and not repeated)


def test_log_lines_joins_the_logs_and_leaves_out_a_line_being_written(tmp_path: Path) -> None:
    first, second = tmp_path / "bob.log.1", tmp_path / "bob.log"
    first.write_bytes(b"one\r still one\n")
    second.write_bytes(b"two\nthree, half writ")
    assert log_lines([first, tmp_path / "absent.log", second]) == ["one\r still one", "two"]


def test_the_first_cursor_is_written_only_before_the_first_start(tmp_path: Path) -> None:
    log = tmp_path / "clients" / "bob.log"
    record_first_cursor(log, 7)
    record_first_cursor(log, 9)
    assert log_lines([log]) == [first_start_line(7)]


def test_seq_ranges_reads_as_a_person_would_write_them() -> None:
    assert seq_ranges([9, 4, 7, 8]) == "#4, #7-#9"
