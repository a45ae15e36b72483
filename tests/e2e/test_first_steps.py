"""What a newcomer meets first, through chatctl as a user runs it: refused tokens,
a server that is not there yet, watching delivery, the console's own commands."""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version

import pytest

from tests.e2e.conftest import CHATCTL, Chatctl, Result, Terminal
from tests.support import TIMEOUT_S, Console, Process, wait_until


def one_line(result: Result) -> str:
    assert result.code != 0, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result.stderr.strip()


def test_a_refused_member_token_says_where_it_came_from_and_how_to_get_a_new_one(team: Chatctl) -> None:
    """Alice's token file holds a token since replaced: every member command says
    so, and none sends her to the admin token."""
    token_file = team.home / "tokens" / "alice.token"
    stale = token_file.read_text()
    team.run("token issue alice")
    token_file.write_text(stale)
    for command in (
        "send --as alice --group team hello",
        "history team --as alice",
        "client start alice --group team",
        "client start alice --group team --detach",
    ):
        line = one_line(team.run(command, check=False))
        assert "refused alice's token" in line, (command, line)
        assert str(token_file) in line and "'chatctl token issue alice'" in line, (command, line)
        assert "ADMIN" not in line.upper(), (command, line)


def test_a_refused_admin_token_names_the_admin_token(team: Chatctl) -> None:
    team.env["CHATROOM_ADMIN_TOKEN"] = "not-the-admin-token"
    line = one_line(team.run("group list", check=False))
    assert "refused the admin token" in line and "CHATROOM_ADMIN_TOKEN" in line, line
    assert "token issue" not in line, line


def test_without_a_server_a_detached_client_says_what_is_wrong_and_list_shows_who_is_connected(
    team: Chatctl,
) -> None:
    """The server is stopped: starting alice says in one line that nothing answers
    and leaves nothing running. With the server back, bob connects; the server goes
    away again and client list shows him alive but no longer connected."""
    address = team.env["CHATROOM_SERVER"]
    team.run("server stop")
    line = one_line(team.run("client start alice --group team --detach", check=False))
    assert line == (
        f"error: alice: the server at {address} is not answering: start one with 'chatctl server start'"
        " or point --server / CHATROOM_SERVER at it"
    )
    assert team.clients() == {}

    team.run(f"server start --detach --listen {address}")
    team.run("client start bob --group team --detach")
    bob = team.clients()["bob"]
    assert (bob["alive"], bob["connected"]) == (True, True), bob
    assert " connected " in team.run("client list").stdout

    team.run("server stop")
    wait_until(lambda: team.clients()["bob"]["connected"] is False, what="bob to be reported not connected")
    assert team.clients()["bob"]["alive"] is True
    assert " waiting " in team.run("client list").stdout


def watch(team: Chatctl, *flags: str) -> Process:
    return Process([CHATCTL, "delivery", "show", "team", "--watch", *flags], team.env)


def test_delivery_watch_piped_streams_json_lines_and_fails_in_one_line_when_the_server_goes(
    team: Chatctl,
) -> None:
    watching = watch(team, "--json")
    try:
        watching.expect_count("{", 2)  # refreshes arrive while it runs, one document a line
        team.run("send --as alice --group team hello")
        line = watching.wait_for_line(lambda line: '"head_seq": 1' in line, TIMEOUT_S)
        assert line is not None, watching.output
        document = json.loads(line)
        assert document["group"] == "team"
        assert {m["member"]: m["unread_count"] for m in document["members"]} == {
            "alice": 0,
            "bob": 1,
            "chad": 1,
        }
        team.run("server stop")
        assert watching.wait(TIMEOUT_S) == 1
        assert watching.lines[-1].startswith("error: cannot reach the chatroom server at"), watching.output
        assert all(json.loads(line)["group"] == "team" for line in watching.lines[:-1]), watching.output
    finally:
        watching.stop()


def test_delivery_watch_piped_prints_each_refresh_as_it_comes(team: Chatctl) -> None:
    watching = watch(team)
    try:
        watching.expect_count("team: head seq 0", 2)
        team.run("send --as alice --group team hello")
        watching.expect("^team: head seq 1")
    finally:
        watching.stop()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_delivery_watch_in_a_terminal_keeps_the_error_on_screen(team: Chatctl, terminal: Terminal) -> None:
    terminal.start(f"env COLUMNS=100 {CHATCTL} delivery show team --watch")  # the terminal's width
    terminal.wait_for_screen(lambda s: any(line.startswith("team: head seq 0") for line in s), "the table")
    team.run("server stop")
    assert terminal.wait_for_exit() == 1
    history = terminal.tmux("capture-pane", "-p", "-S", "-", "-t", "console")  # with what scrolled off
    screen = [line.rstrip() for line in history.splitlines() if line.strip()]
    errors = [line for line in screen if line.startswith("error: ")]
    assert len(errors) == 1 and "cannot reach the chatroom server" in errors[0], screen
    assert any(line.startswith("team: head seq 0") for line in screen), screen


def test_chatctl_version_prints_the_installed_version(chatctl: Chatctl) -> None:
    result = chatctl.run("--version")
    assert result.stdout == f"chatctl (chatroom) {version('chatroom')}\n"


def test_server_may_come_before_the_command_like_the_tls_options(team: Chatctl) -> None:
    address = team.env.pop("CHATROOM_SERVER")
    listed = team.run(f"--server {address} group list --json").json()
    assert [group["group"] for group in listed] == ["team"]
    team.run(f"--server {address} client start bob --group team --detach")  # the client is told too
    assert team.clients()["bob"]["server"] == address
    sent = team.run(f"-s {address} send --as alice --group team hello --json").json()
    team.wait_for_note("bob", "alice", "hello")
    assert sent["seq"] == 1


def test_token_show_prints_the_saved_token_and_only_issue_replaces_it(team: Chatctl) -> None:
    token_file = team.home / "tokens" / "alice.token"
    saved = token_file.read_text().strip()
    assert team.run("token show alice").stdout.strip() == saved
    team.run("send --as alice --group team 'still mine'")  # showing replaced nothing
    assert team.run("token show alice --json").json()["token"] == saved

    printed = team.run("token issue alice --print-token").stdout.splitlines()[-1]
    assert printed != saved and printed == token_file.read_text().strip()
    refused = team.run("token issue alice --show", check=False)
    assert refused.code == 2 and "--show" in refused.stderr
    assert token_file.read_text().strip() == printed


def test_console_commands_are_its_own_and_never_sent(team: Chatctl) -> None:
    token_file = team.home / "tokens" / "alice.token"
    alice = Console("alice", "team", team.env["CHATROOM_SERVER"], token_file, team.env).subscribed()
    try:
        alice.write_line("/help")
        alice.expect(r"^\* commands: /help list these commands; /history \[N\] .*; /quit leave the console$")
        alice.write_line("/histroy 5")
        alice.expect(r"^\* unknown command /histroy, not sent: /help lists the commands$")
        alice.write_line("//shrug")
        alice.expect(r"^\* sent #1: /shrug$")  # the first note stored: neither command was sent
        assert alice.output.count("* sent #") == 1, alice.output
        alice.write_line("/quit")
        assert alice.wait(TIMEOUT_S) == 0
    finally:
        alice.stop()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_note_over_the_limit_stays_in_the_input_line_to_edit(chatctl: Chatctl) -> None:
    chatctl.start_server("--max-text-bytes 10")
    chatctl.run("group create team --members alice,bob")
    terminal = Terminal(chatctl.env)
    try:
        terminal.start(f"{CHATCTL} client start alice --group team")
        terminal.wait_for_screen(lambda s: any(line == "alice@team>" for line in s), "the prompt")
        terminal.type("too long: cut")
        terminal.press("Enter")
        screen = terminal.wait_for_screen(lambda s: any("not sent" in line for line in s), "the refusal")
        assert (
            "* not sent (INVALID_ARGUMENT: text is 13 bytes; the limit is 10); edit it below and press Enter"
            in screen
        ), screen
        terminal.wait_for_screen(
            lambda s: [line for line in s if line][-1] == "alice@team> too long: cut", "the kept text"
        )
        for _ in range(4):
            terminal.press("BSpace")
        terminal.press("Enter")
        terminal.wait_for_screen(lambda s: "* sent #1: too long:" in s, "the edited note sent")
    finally:
        terminal.close()
