"""Whatever a note holds, it prints as one visible line that parses back as that note."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from clients.display import visible
from clients.lines import NOTE_LINE, format_note
from clients.model import Note


@given(st.text())
def test_nothing_that_acts_on_a_terminal_survives(text: str) -> None:
    shown = visible(text)
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in shown)
    assert not any(c in shown for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


@given(st.text())
def test_a_note_is_one_line_that_parses_back_as_itself(text: str) -> None:
    note = Note("team", 7, "bob", text, datetime(2026, 1, 1, tzinfo=UTC), "id")
    line = format_note(note)
    assert line.splitlines() == [line]
    match = NOTE_LINE.match(line)
    assert match is not None
    parsed = (match["group"], match["seq"], match["sender"], match["text"])
    assert parsed == ("team", "7", "bob", visible(text))


def test_ordinary_text_is_left_alone() -> None:
    assert visible("héllo 👨‍👩‍👧 שלום C:\\temp") == "héllo 👨‍👩‍👧 שלום C:\\temp"
    assert visible("\x1b[2J\x07\x9b\n\u202e") == "\\x1b[2J\\x07\\x9b\\n\\u202e"
