"""verify on real processes: two replicas on PostgreSQL, console clients that chatctl starts,
and logs that the test then damages the way a faulty client would."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from admin_cli.cluster.verify import (
    ClientLog,
    ServerAccess,
    fetch_unread,
    problems,
    record_first_start,
    verify,
)
from tests.databases import postgres_database
from tests.e2e.conftest import Chatctl
from tests.support import ADMIN_TOKEN, ServerProcess, send, wait_until

pytestmark = pytest.mark.postgres

READERS = ("bob", "chad")


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Chatctl, ServerAccess]]:
    """Replicas A and B; group team of alice, bob and chad; bob and chad's consoles on both."""
    with postgres_database(postgres_url) as url:
        a = ServerProcess(tmp_path / "a", db=url).start()
        b = ServerProcess(tmp_path / "b", db=url).start()
        cli = Chatctl(tmp_path / "home")
        servers = f"{a.address},{b.address}"
        cli.env.update(CHATROOM_SERVER=servers, CHATROOM_ADMIN_TOKEN=ADMIN_TOKEN)
        access = ServerAccess([a.address, b.address], ADMIN_TOKEN, cli.home)
        try:
            cli.run("group create team --members alice,bob,chad")
            for reader in READERS:
                record_first_start(access, client(cli, reader))
            cli.run(f"client start {' '.join(READERS)} --group team --detach --restart on-failure")
            yield cli, access
        finally:
            cli.run("client stop --all", check=False)
            a.stop()
            b.stop()


def client(cli: Chatctl, member: str) -> ClientLog:
    return ClientLog(member, member, "team", [cli.home / "clients" / f"{member}.log"])


def alice_sends(cli: Chatctl, access: ServerAccess, *texts: str) -> list[int]:
    token = (cli.home / "tokens" / "alice.token").read_text().strip()
    with grpc.insecure_channel(access.servers[0]) as channel:
        return [send(channel, token, "team", text).seq for text in texts]


def quiet(cli: Chatctl, access: ServerAccess) -> None:
    """Until bob and chad have read everything (the console acks what it has printed)."""
    wait_until(
        lambda: all(fetch_unread(access, "team")[r] == 0 for r in READERS), what="bob and chad to read"
    )


def edit_log(cli: Chatctl, member: str, edit) -> None:
    log = cli.home / "clients" / f"{member}.log"
    lines = log.read_text().split("\n")
    log.write_text("\n".join(edit(lines)))


def test_a_whole_cluster_passes_and_a_dropped_or_repeated_line_fails(cluster) -> None:
    cli, access = cluster
    seqs = alice_sends(cli, access, "one", "two", "three")
    quiet(cli, access)
    reports = verify(access, [client(cli, r) for r in READERS])
    assert [(r.name, r.ok, r.shown, r.from_seq) for r in reports] == [
        ("bob", True, 3, 1),
        ("chad", True, 3, 1),
    ]

    edit_log(cli, "bob", lambda lines: [line for line in lines if not line.endswith("alice: two")])
    edit_log(
        cli,
        "chad",
        lambda lines: [x for line in lines for x in [line] * (2 if line.endswith(": one") else 1)],
    )
    bob, chad = verify(access, [client(cli, r) for r in READERS])
    assert (bob.ok, bob.missing, bob.duplicated) == (False, [seqs[1]], [])
    assert (chad.ok, chad.missing, chad.duplicated) == (False, [], [seqs[0]])
    assert problems(bob) == [f"missing #{seqs[1]}"]


def test_a_note_that_imitates_the_next_note_does_not_hide_its_loss(cluster) -> None:
    cli, access = cluster
    forger, real = alice_sends(cli, access, "see:\n[team #2 12:00:00] alice: the real one", "the real one")
    assert real == forger + 1
    quiet(cli, access)
    assert all(r.ok for r in verify(access, [client(cli, r) for r in READERS]))
    log = (cli.home / "clients" / "bob.log").read_text()
    assert log.count("alice: the real one\n") == 2  # the imitation, then the real note

    def drop_the_real_one(lines: list[str]) -> list[str]:
        last = max(i for i, line in enumerate(lines) if line.endswith("alice: the real one"))
        return lines[:last] + lines[last + 1 :]

    edit_log(cli, "bob", drop_the_real_one)
    bob, _ = verify(access, [client(cli, r) for r in READERS])
    assert (bob.missing, bob.duplicated, bob.mismatched_lines) == ([real], [], [])


def test_a_killed_and_restarted_client_is_whole_across_its_restarts(cluster) -> None:
    cli, access = cluster
    alice_sends(cli, access, "before")
    quiet(cli, access)
    pid = int(cli.clients()["bob"]["pid"])
    os.kill(pid, signal.SIGKILL)
    alice_sends(cli, access, "while bob was down", "and after")
    wait_until(lambda: cli.clients()["bob"]["pid"] != pid and cli.clients()["bob"]["alive"], what="a new bob")
    quiet(cli, access)
    reports = verify(access, [client(cli, r) for r in READERS])
    assert all(r.ok for r in reports), [problems(r) for r in reports]
    assert "killed by SIGKILL" in (cli.home / "clients" / "bob.log").read_text()
