"""What a newcomer meets first, through chatctl as a user runs it: refused tokens,
a server that is not there yet, watching delivery, the console's own commands."""

from __future__ import annotations

from tests.e2e.conftest import Chatctl, Result
from tests.support import wait_until


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
