"""Whatever a note holds, it prints as one visible line that parses back as that note."""

from __future__ import annotations

import io
import unicodedata
from contextlib import redirect_stderr
from datetime import UTC, datetime

import pytest
import typer
from hypothesis import example, given
from hypothesis import strategies as st
from rich.console import Console

from admin_cli import output
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


@example("x\\[/]y")
@example("p\\[bold red]RED")
@given(st.text(alphabet=st.sampled_from("ab[]/\\ =#@"), max_size=30) | st.text(max_size=30))
def test_chatctl_prints_any_text_as_it_is_never_as_rich_markup(text: str) -> None:
    """A member could otherwise style other people's output, or make chatctl crash on `\\[/]`."""
    console = Console(width=1000, record=True, force_terminal=True, color_system="truecolor")
    console.print(output.table(None, ("LAST NOTE",), [(text,)]))
    assert console.export_text(styles=False).splitlines()[1].strip() == visible(text).strip()
    with pytest.raises(typer.Exit), redirect_stderr(io.StringIO()):
        output.fail(text)
