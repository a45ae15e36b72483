"""chatctl as an operator uses it: processes it starts, finds, restarts and stops,
and one clear line for every mistake."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from admin_cli.processes import ProcessId
from tests.e2e.conftest import Chatctl, Result
from tests.support import TIMEOUT_S


def wait_for(condition, what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_client_list_shows_a_killed_client_as_dead(team: Chatctl) -> None:
    team.run("client start alice bob --group team --detach")
    team.run('send --as alice --group team "hello bob"')
    team.wait_for_note("bob", "alice", "hello bob")
    listed = team.clients()
    assert {name: entry["alive"] for name, entry in listed.items()} == {"alice": True, "bob": True}
    assert listed["bob"]["last_note"].endswith("alice: hello bob")
    os.kill(int(listed["bob"]["pid"]), signal.SIGKILL)
    wait_for(lambda: team.clients()["bob"]["alive"] is False, "bob to be reported dead")
    assert team.clients()["alice"]["alive"] is True
    table = team.run("client list").stdout
    assert any(
        line.split()[:4] == ["bob", "team", str(listed["bob"]["pid"]), "dead"] for line in table.splitlines()
    )


def test_restart_on_failure_brings_a_client_back_and_it_gets_what_it_missed_once(team: Chatctl) -> None:
    team.run("client start bob --group team --detach --restart on-failure")
    team.run('send --as alice --group team "before the crash"')
    team.wait_for_note("bob", "alice", "before the crash")
    first_pid = int(team.clients()["bob"]["pid"])
    os.kill(first_pid, signal.SIGKILL)
    team.run('send --as alice --group team "while bob was down"')
    wait_for(
        lambda: team.clients()["bob"]["pid"] != first_pid and team.clients()["bob"]["alive"], "a new bob"
    )
    team.wait_for_note("bob", "alice", "while bob was down")
    assert team.notes("bob") == [(1, "alice", "before the crash"), (2, "alice", "while bob was down")]
    assert team.clients()["bob"]["restarts"] == 1
    team.run("client stop bob")
    assert team.clients() == {}


def test_stopping_leaves_no_process_behind(team: Chatctl) -> None:
    team.run("client start alice bob chad --group team --detach --restart on-failure")
    processes = [ProcessId.of(int(e["pid"])) for e in team.clients().values()]
    server = team.run("server status --json").json()
    assert isinstance(server, dict) and server["health"] == "SERVING"
    processes.append(ProcessId.of(server["pid"]))
    stopped = team.run("client stop --all").stdout
    assert sorted(stopped.split()) == sorted(["alice:", "stopped", "bob:", "stopped", "chad:", "stopped"])
    assert team.run("server stop").stdout.startswith("server stopped")
    assert [process for process in processes if process is not None and process.alive] == []
    assert team.run("server status", check=False).code == 3


def test_the_console_refuses_a_token_file_that_holds_no_token(tmp_path: Path) -> None:
    """gRPC would answer such a token with a bare INTERNAL "Invalid metadata"."""
    token_file = tmp_path / "bob.token"
    token_file.write_text("bob.secret\x1b[2J\n")
    argv = [sys.executable, "-m", "clients", "bob", "--group", "team", "--token-file", str(token_file)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 2
    assert done.stderr == f"error: {token_file} holds no token: a token is one word of printable ASCII\n"


def test_a_name_given_twice_starts_one_client(team: Chatctl) -> None:
    started = team.run("client start alice alice --group team --detach").stdout
    assert started.count("started alice") == 1, started
    team.run("client stop --all")
    wait_for(lambda: _processes_using(team.home) == [], "every client process to end")


def _processes_using(home: Path) -> list[int]:
    """Processes other than the server that run with this state directory."""
    import psutil

    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("CHATROOM_HOME") == str(home) and "server" not in process.cmdline():
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


def test_server_status_reports_address_pid_storage_and_health(team: Chatctl) -> None:
    status = team.run("server status --json").json()
    assert isinstance(status, dict)
    assert status["address"] == team.env["CHATROOM_SERVER"]
    assert status["health"] == "SERVING"
    assert status["storage"] == str(team.home / "chatroom.db")
    assert status["uptime_s"] >= 0


def test_groups_can_be_listed_changed_and_deleted(team: Chatctl) -> None:
    assert team.run("group list --json").json() == [
        {"group": "team", "members": ["alice", "bob", "chad"], "head_seq": 0, "first_seq": 1}
    ]
    added = team.run("group add-members team --members doug --json").json()
    assert added == {
        "group": "team",
        "members": ["alice", "bob", "chad", "doug"],
        "head_seq": 0,
        "first_seq": 1,
        "tokens_saved": ["doug"],
    }
    assert (team.home / "tokens" / "doug.token").stat().st_mode & 0o777 == 0o600
    team.run("group remove-members team -m doug")
    assert team.run("group show team --json").json()["members"] == ["alice", "bob", "chad"]
    team.run("group delete team --yes")
    assert team.run("group list --json").json() == []


def test_delivery_show_reports_each_members_cursor(team: Chatctl) -> None:
    team.run("client start bob --group team --detach")
    team.run('send --as alice --group team "one"')
    team.wait_for_note("bob", "alice", "one")
    wait_for(
        lambda: (
            {m["member"]: m["unread_count"] for m in team.run("delivery show team --json").json()["members"]}
            == {"alice": 0, "bob": 0, "chad": 1}
        ),
        "bob's ack",
    )
    shown = team.run("delivery show team --json").json()
    assert isinstance(shown, dict) and shown["head_seq"] == 1
    bob = next(m for m in shown["members"] if m["member"] == "bob")
    assert (bob["last_acked_seq"], bob["online_sessions"]) == (1, 1)
    assert "team: head seq 1" in team.run("delivery show team").stdout


def test_demo_passes_on_a_fresh_state_directory(chatctl: Chatctl) -> None:
    result = chatctl.run("demo --gap 1", timeout_s=120)
    assert result.stdout.rstrip().endswith("all 18 expectations met")


def test_demo_fails_when_an_expectation_fails(chatctl: Chatctl) -> None:
    # A real server that refuses notes longer than 10 bytes: Alice's greeting cannot be sent.
    chatctl.start_server("--max-text-bytes 10")
    result = chatctl.run(
        f"demo --server {chatctl.env['CHATROOM_SERVER']} --gap 0", check=False, timeout_s=120
    )
    assert result.code == 1
    assert "✗ alice's note is stored" in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("error: demo failed: alice's note is stored;")


ERRORS = [
    ("group create team --members x", "error: group 'team' already exists"),
    ("group create Team --members x", "error: invalid group name 'Team': use 1-63 characters"),
    ("group create ok --members 'Bad Name'", "error: invalid member name 'Bad Name'"),
    ("group show nope", "error: group 'nope' does not exist"),
    ("group add-members nope --members x", "error: group 'nope' does not exist"),
    ("group remove-members nope --members x", "error: group 'nope' does not exist"),
    ("group delete nope --yes", "error: group 'nope' does not exist"),
    ("group delete team", "error: deleting 'team' removes all its notes: pass --yes to confirm"),
    ("delivery show nope", "error: group 'nope' does not exist"),
    ("token issue 'not valid'", "error: invalid member name 'not valid'"),
    ("send --as zed --group team hi", "error: no token for 'zed' in "),
    ("send --as alice --group team ''", "error: text is empty"),
    ("send --as alice --group nope hi", "error: group 'nope' does not exist or you are not a member of it"),
    (
        "client start alice bob --group team",
        "error: several clients run in the background only: add --detach",
    ),
    ("client start zed --group team --detach", "error: no token for 'zed' in "),
    (
        "client start alice --group nope --detach",
        "error: alice: PERMISSION_DENIED: group 'nope' does not exist",
    ),
    ("client stop zed", "error: no client named 'zed'"),
    ("client stop", "error: name the clients to stop, or pass --all"),
    ("client logs zed", "error: no log for 'zed'"),
    ("client stop ../server", "error: invalid client name '../server'"),
    ("client logs ../server", "error: invalid client name '../server'"),
    ("server start", "error: a server is already running from "),
]


@pytest.fixture(scope="module")
def shared_team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chatctl]:
    """One server with group team for the many error cases, none of which changes it."""
    cli = Chatctl(tmp_path_factory.mktemp("errors") / "home")
    cli.start_server()
    cli.run("group create team --members alice,bob,chad")
    yield cli
    cli.run("client stop --all", check=False)
    cli.run("server stop", check=False)


def assert_one_line_error(result: Result, line: str) -> None:
    assert result.code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(line), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(("command", "line"), ERRORS, ids=[command for command, _ in ERRORS])
def test_every_mistake_is_one_line_and_a_non_zero_exit(shared_team: Chatctl, command: str, line: str) -> None:
    assert_one_line_error(shared_team.run(command, check=False), line)


USAGE_ERRORS = [
    ("history team --as alice --limit 0", "error: Invalid value for '--limit'"),
    ("history team --as alice --before -1", "error: Invalid value for '--before'"),
    ("nosuch", "error: No such command 'nosuch'. (see 'chatctl --help')"),
    ("send --bogus", "error: No such option: --bogus (see 'chatctl send --help')"),
    ("cluster scale", "error: Missing argument 'pairs'."),
]


@pytest.mark.parametrize(("command", "line"), USAGE_ERRORS, ids=[command for command, _ in USAGE_ERRORS])
def test_a_usage_mistake_is_one_line_too(chatctl: Chatctl, command: str, line: str) -> None:
    result = chatctl.run(command, check=False)
    assert result.code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(line), result.stderr


@pytest.mark.parametrize("detach", ["--detach", ""])
def test_an_address_that_cannot_be_bound_is_one_line(chatctl: Chatctl, detach: str) -> None:
    result = chatctl.run(f"server start {detach} --listen 127.0.0.1:1:2", check=False)
    expected = "error: cannot listen on 127.0.0.1:1:2"
    if detach:
        expected = f"error: the server exited at start (code 1): {expected}"
    assert_one_line_error(result, expected)


@pytest.mark.parametrize(
    "option", ["--listen 127.0.0.1:99999", "--listen 127.0.0.1:-5", "--metrics-listen h:70000"]
)
def test_a_port_out_of_range_is_refused_not_wrapped_around(chatctl: Chatctl, option: str) -> None:
    flag, address = option.split()
    line = f"error: {flag} '{address}': give host:port with a port of 0-65535"
    assert_one_line_error(chatctl.run(f"server start --detach {option}", check=False), line)


def test_a_state_directory_that_cannot_be_written_is_one_line(team: Chatctl, tmp_path: Path) -> None:
    shutil.rmtree(team.home / "tokens")
    (team.home / "tokens").write_text("not a directory")
    result = team.run("group create more --members newbie", check=False)
    assert_one_line_error(result, "error: newbie's new token could not be saved to ")
    assert "then run 'chatctl token issue newbie'" in result.stderr
    (tmp_path / "a-file").write_text("")
    blocked = Chatctl(tmp_path / "a-file")
    assert_one_line_error(blocked.run("server start --listen 127.0.0.1:0", check=False), "error: cannot use ")


def test_cluster_logs_of_a_name_the_cluster_has_not_is_refused(chatctl: Chatctl, tmp_path: Path) -> None:
    chatctl.run(f"cluster init {tmp_path / 'chatroom.toml'}")
    options = f"--file {tmp_path / 'chatroom.toml'}"
    assert_one_line_error(
        chatctl.run(f"cluster logs nobody {options}", check=False), "error: no process named 'nobody'"
    )
    assert_one_line_error(
        chatctl.run(f"cluster logs alice-2 {options}", check=False), "error: cluster team has no logs yet"
    )


def test_a_unix_socket_that_cannot_be_made_is_one_line(chatctl: Chatctl) -> None:
    result = chatctl.run("server start --listen unix:/nonexistent/dir/sock", check=False)
    assert_one_line_error(result, "error: cannot listen on unix:/nonexistent/dir/sock: gRPC could not create")


def test_a_port_in_use_says_so_and_what_to_do(team: Chatctl, tmp_path) -> None:
    other = Chatctl(tmp_path / "other")
    address = team.env["CHATROOM_SERVER"]
    port = address.rpartition(":")[2]
    result = other.run(f"server start --listen {address}", check=False)
    assert_one_line_error(
        result,
        f"error: cannot listen on {address}: port {port} is already in use (another chatroom server?"
        " 'chatctl server status' tells); stop it or choose another address with --listen",
    )


@pytest.mark.parametrize(
    ("db", "line"),
    [
        ("mysql://root@localhost/chat", "error: cannot use --db 'mysql://root@localhost/chat': "),
        ("sqlite:///x.db", "error: cannot use --db 'sqlite:///x.db': give SQLite as a file path"),
    ],
)
def test_a_database_url_that_is_neither_sqlite_nor_postgres_is_one_line(
    chatctl: Chatctl, db: str, line: str
) -> None:
    assert_one_line_error(chatctl.run(f"server start --listen 127.0.0.1:0 --db {db}", check=False), line)


def test_an_unreachable_server_is_named_with_the_command_that_starts_one(chatctl: Chatctl) -> None:
    chatctl.env["CHATROOM_ADMIN_TOKEN"] = "whatever"
    for command in ("group list", "delivery show team", "token issue doug"):
        result = chatctl.run(f"{command} --server 127.0.0.1:9", check=False)
        assert (result.code, result.stderr) == (
            1,
            "error: cannot reach the chatroom server at 127.0.0.1:9: start one with 'chatctl server start'"
            " or point --server / CHATROOM_SERVER at it\n",
        )


def test_a_missing_admin_token_says_where_it_was_looked_for(chatctl: Chatctl) -> None:
    result = chatctl.run("group list", check=False)
    assert result.code == 1
    assert result.stderr.startswith(
        "error: no admin token: set CHATROOM_ADMIN_TOKEN or start the server here first"
    )


def test_health_says_serving_and_fails_when_unreachable(team: Chatctl) -> None:
    assert team.run("health --json").json()["services"] == {
        "(server)": "SERVING",
        "chatroom.v1.ChatService": "SERVING",
        "chatroom.v1.AdminService": "SERVING",
    }
    assert team.run("health --server 127.0.0.1:9", check=False).code == 1


@pytest.mark.parametrize(
    ("db", "line"),
    [
        ("/proc/no-such-dir/chatroom.db", "error: cannot open the database /proc/no-such-dir/chatroom.db:"),
        (
            "postgresql://chatroom:secret@127.0.0.1:9/none",
            "error: cannot connect to PostgreSQL at postgresql://…@",
        ),
    ],
)
def test_unusable_storage_is_one_line_without_the_password(chatctl: Chatctl, db: str, line: str) -> None:
    result = chatctl.run(f"server start --listen 127.0.0.1:0 --db {db}", check=False)
    assert_one_line_error(result, line)
    assert "secret" not in result.stderr


def test_shell_completion_is_offered(chatctl: Chatctl) -> None:
    chatctl.env["SHELL"] = "/bin/bash"
    script = chatctl.run("--show-completion bash").stdout
    assert "complete" in script and "chatctl" in script


def test_group_show_prints_first_and_head_seq(team: Chatctl) -> None:
    team.run('send --as alice --group team "one"')
    team.run('send --as alice --group team "two"')
    shown = team.run("group show team --json").json()
    assert (shown["first_seq"], shown["head_seq"]) == (1, 2)
    table = team.run("group show team").stdout.splitlines()
    assert table[0].split() == ["GROUP", "MEMBERS", "FIRST", "SEQ", "HEAD", "SEQ"]
    assert table[1].split()[-2:] == ["1", "2"]


def test_unreadable_token_files_and_member_names_that_are_paths_are_one_line(team: Chatctl) -> None:
    (team.home / "tokens" / "bob.token").write_bytes(b"\xff\xfe not text")
    (team.home / "tokens" / "chad.token").unlink()
    (team.home / "tokens" / "chad.token").mkdir()
    (team.home / "tokens" / "doug.token").write_text("doug.secret\x1b[2J\n")
    for command, line in (
        ("send --as bob --group team hi", "not UTF-8"),
        ("send --as chad --group team hi", "cannot read the token file"),
        ("send --as doug --group team hi", "holds no token: a token is one word of printable ASCII"),
        ("send --as ../admin --group team hi", "invalid member name '../admin'"),
        ("send --as alice --group team 'c1 \udc9b'", "'c1 \\udc9b' is not valid UTF-8"),
    ):
        result = team.run(command, check=False)
        assert result.code != 0 and len(result.stderr.splitlines()) == 1, result.stderr
        assert line in result.stderr and "Traceback" not in result.stderr
