"""chatctl history against a real server: pages of kept notes, for people and for scripts."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.e2e.conftest import Chatctl
from tests.support import wait_until

LINE = re.compile(r"^\[team #(\d+) \d\d:\d\d:\d\d\] (\S+): (.*)$")


def test_history_pages_back_in_seq_order(team: Chatctl) -> None:
    for sender, text in (("alice", "one"), ("bob", "two"), ("alice", "three\x1b[2J"), ("chad", "four")):
        team.run(f"send --as {sender} --group team {shlex.quote(text)}")
    shown = team.run("history team --as bob --limit 3")
    lines = [LINE.match(line) for line in shown.stdout.splitlines()]
    assert [(m[1], m[2], m[3]) for m in lines if m] == [
        ("2", "bob", "two"),
        ("3", "alice", r"three\x1b[2J"),
        ("4", "chad", "four"),
    ]
    assert len(lines) == 3 and "--before 2" in shown.stderr
    page = team.run("history team --as chad --before 3 --json").json()
    assert {k: page[k] for k in ("group", "first_seq", "has_more")} == {
        "group": "team",
        "first_seq": 1,
        "has_more": False,
    }
    assert [(n["seq"], n["sender"], n["text"]) for n in page["notes"]] == [
        (1, "alice", "one"),
        (2, "bob", "two"),
    ]
    assert all(n["sent_at"].endswith("+00:00") for n in page["notes"])


def test_history_shows_where_retention_begins(chatctl: Chatctl) -> None:
    chatctl.start_server("--retention-max-notes 2")
    chatctl.run("group create team --members alice,bob")
    for i in range(1, 6):
        chatctl.run(f"send --as alice --group team n{i}")
    wait_until(lambda: chatctl.run("group show team --json").json()["first_seq"] == 4, what="1..3 deleted")
    page = chatctl.run("history team --as bob --json").json()
    assert (page["first_seq"], page["has_more"], [n["seq"] for n in page["notes"]]) == (4, False, [4, 5])


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("history nope --as alice", "error: group 'nope' does not exist or you are not a member of it"),
        ("history team --as zed", "error: no token for 'zed' in "),
        ("history team --as doug", "error: group 'team' does not exist or you are not a member of it"),
    ],
)
def test_history_refusals_are_one_line(team: Chatctl, command: str, message: str) -> None:
    if "zed" not in command:
        team.run("token issue doug")
    result = team.run(command, check=False)
    assert result.code != 0 and result.stdout == ""
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1
