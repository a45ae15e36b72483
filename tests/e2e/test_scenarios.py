"""The three scenarios of chatroom, end to end: chatctl, a server process and one
console client process per member, read through their logs.

Notes reach a member in seq order, so that a note did *not* arrive is checked
only after a later note has."""

from __future__ import annotations

import time

from tests.e2e.conftest import Chatctl

OFFLINE_GAP_S = 5.0


def test_scenario_1_bob_and_chad_come_online_later_and_get_everything(team: Chatctl) -> None:
    team.run("client start alice --group team --detach")
    team.run('send --as alice --group team "Hi team, this is Alice."')
    time.sleep(OFFLINE_GAP_S)  # the scenario itself: Bob and Chad stay offline for 5 s
    team.run("client start bob chad --group team --detach")
    for member in ("bob", "chad"):
        team.wait_for_note(member, "alice", "Hi team, this is Alice.")
        assert team.notes(member) == [(1, "alice", "Hi team, this is Alice.")]


def test_scenario_2_bob_sends_and_does_not_get_his_own_note(team: Chatctl) -> None:
    team.run("client start alice bob chad --group team --detach")
    team.run('send --as bob --group team "Bob here."')
    team.wait_for_note("alice", "bob", "Bob here.")
    team.wait_for_note("chad", "bob", "Bob here.")
    team.run('send --as chad --group team "Later note."')
    team.wait_for_note("bob", "chad", "Later note.")
    assert team.notes("bob") == [(2, "chad", "Later note.")]


def test_scenario_3_alice_is_not_echoed_and_doug_gets_nothing(team: Chatctl) -> None:
    team.run("token issue doug")
    team.run("client start alice bob chad --group team --detach")
    team.run('send --as alice --group team "Shipping it."')
    team.wait_for_note("bob", "alice", "Shipping it.")
    team.wait_for_note("chad", "alice", "Shipping it.")
    refused = team.run("client start doug --group team --detach", check=False)
    assert refused.code == 1
    assert refused.stderr.strip() == (
        "error: doug: PERMISSION_DENIED: group 'team' does not exist or you are not a member of it"
    )
    assert team.notes("doug") == []
    team.run('send --as chad --group team "Later note."')
    team.wait_for_note("alice", "chad", "Later note.")
    assert team.notes("alice") == [(2, "chad", "Later note.")]
