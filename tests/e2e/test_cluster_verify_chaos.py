"""chatctl cluster verify and chaos on the example cluster (embedded PostgreSQL, two replicas,
alice, bob and chad's consoles): notes sent with chatctl send, then verify; chaos kills replicas
and clients under load and verifies; finally a client's log is damaged and verify must say so.

One cluster is shared by the module's tests, in order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.lines import NOTE_LINE
from tests.e2e.test_cluster import CLUSTER_TIMEOUT_S, Cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

READERS = ("alice", "bob", "chad")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("verified")
    cli = Cluster(root / "home", root / "chatroom.toml")
    cli.run(f"cluster init {cli.file}")
    port = 54000 + os.getpid() % 1000 * 3  # apart from test_cluster.py's ports and other runs'
    cli.file.write_text(cli.file.read_text().replace("port = 50061", f"port = {port}"))
    cli.port = port
    try:
        cli.run("cluster up", timeout_s=CLUSTER_TIMEOUT_S)
        yield cli
    finally:
        cli.run("cluster down", check=False, timeout_s=CLUSTER_TIMEOUT_S)


def log_of(cluster: Cluster, name: str) -> Path:
    return cluster.home / "clusters" / "team" / "clients" / f"{name}.log"


def test_verify_passes_once_every_client_showed_what_was_sent(cluster: Cluster) -> None:
    sent = [cluster.send(member, f"note {i} from {member}") for i, member in enumerate(READERS * 2)]
    verified = cluster.run("cluster verify --json", timeout_s=CLUSTER_TIMEOUT_S).json()
    assert verified["ok"] is True
    clients = {entry["name"]: entry for entry in verified["clients"]}
    assert sorted(clients) == list(READERS)
    for name, entry in clients.items():
        assert (entry["member"], entry["group"], entry["head_seq"]) == (name, "team", max(sent))
        assert (entry["missing"], entry["duplicated"], entry["unread"]) == ([], [], 0)
        assert entry["shown"] == 4  # the notes of the two others, each twice
        assert (entry["from_seq"], entry["start"]) == (1, "cursor at first start")
    table = cluster.run("cluster verify", timeout_s=CLUSTER_TIMEOUT_S)
    assert "every client is whole (3 checked)" in table.stdout
    assert [line.split()[0] for line in table.stdout.splitlines()[1:4]] == list(READERS)


def test_chaos_kills_replicas_and_clients_and_every_client_stays_whole(cluster: Cluster) -> None:
    killed_before = _sigkilled(cluster)
    pids = {name: entry["pid"] for name, entry in cluster.processes().items()}
    result = cluster.run(
        "cluster chaos --duration 30 --seed 7 --kill-servers 2 --kill-clients 5 --senders 3 --json",
        timeout_s=30 + 4 * CLUSTER_TIMEOUT_S,
    ).json()
    assert (result["ok"], result["lost"], result["duplicated"]) == (True, 0, 0), result
    assert (result["server_kills"], result["client_kills"]) == (2, 5)
    assert result["restarts"] >= 7 and result["sent"] > 100
    assert 0 < result["longest_pause_s"] < 30
    killed = _sigkilled(cluster)[len(killed_before) :]
    assert sorted(killed) == sorted(kill["name"] for kill in result["kills"])
    assert {name for name in killed if name.startswith("server-")} <= {"server-1", "server-2"}
    assert all(pids[name] != cluster.processes()[name]["pid"] for name in killed)
    assert {entry["state"] for entry in cluster.processes().values()} == {"running"}
    verified = cluster.run("cluster verify --json", timeout_s=CLUSTER_TIMEOUT_S).json()
    assert verified["ok"] is True and all(entry["shown"] > 100 for entry in verified["clients"])


def _sigkilled(cluster: Cluster) -> list[str]:
    """The processes that exited by SIGKILL, one entry per exit, in order."""
    return [
        event["name"]
        for event in cluster.events()
        if event["type"] == "process" and event["event"] == "exited" and event.get("code") == -9
    ]


def test_verify_fails_naming_a_dropped_and_a_repeated_note(cluster: Cluster) -> None:
    lines = log_of(cluster, "bob").read_text().split("\n")
    notes = [i for i, line in enumerate(lines) if (m := NOTE_LINE.match(line)) and m["group"] == "team"]
    dropped, repeated = notes[0], notes[-1]  # the first too: the log begins with bob's cursor
    dropped_seq = int(NOTE_LINE.match(lines[dropped])["seq"])  # type: ignore[index]
    repeated_seq = int(NOTE_LINE.match(lines[repeated])["seq"])  # type: ignore[index]
    edited = [x for i, line in enumerate(lines) if i != dropped for x in [line] * (2 if i == repeated else 1)]
    log_of(cluster, "bob").write_text("\n".join(edited))

    failed = cluster.run("cluster verify --json", check=False, timeout_s=CLUSTER_TIMEOUT_S)
    assert failed.code != 0
    report = failed.json()
    assert report["ok"] is False
    clients = {entry["name"]: entry for entry in report["clients"]}
    assert (clients["bob"]["missing"], clients["bob"]["duplicated"]) == ([dropped_seq], [repeated_seq])
    assert all(clients[name]["missing"] == clients[name]["duplicated"] == [] for name in ("alice", "chad"))

    told = cluster.run("cluster verify", check=False, timeout_s=CLUSTER_TIMEOUT_S)
    assert told.code != 0
    assert f"bob: missing #{dropped_seq}; duplicated #{repeated_seq}" in told.stderr
    assert "NOT WHOLE" in told.stdout


def test_verify_and_chaos_refuse_in_one_line_without_a_cluster(tmp_path: Path) -> None:
    cli = Cluster(tmp_path / "home", tmp_path / "chatroom.toml")
    cli.run(f"cluster init {cli.file}")
    for command in ("cluster verify", "cluster chaos --duration 1"):
        refused = cli.run(command, check=False)
        assert refused.code != 0
        assert (
            refused.stderr
            == f"error: cluster team is not up: start it with 'chatctl cluster up -f {cli.file}'\n"
        )
    cli.file.write_text(cli.file.read_text().replace("replicas = 2", "replicas = 1"))
    refused = cli.run("cluster chaos", check=False)
    assert refused.code != 0
    assert refused.stderr == f"error: --kill-servers needs two replicas or more, and {cli.file} has 1\n"
    assert cli.run("cluster chaos --kill-servers 0", check=False).stderr.startswith(
        "error: cluster team is not up"
    )
