"""chatctl cluster as an operator uses it: the example file brought up with the embedded
PostgreSQL, replicas and clients killed with SIGKILL and brought back, the formation scaled,
a rollout under steady sending, then down (nothing left alive) and up again with the same data.

One cluster is shared by the module's tests, in order; each waits on what chatctl reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from clients.lines import NOTE_LINE
from tests.e2e.conftest import Chatctl
from tests.support import TIMEOUT_S

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLUSTER_TIMEOUT_S = 150.0


class Cluster(Chatctl):
    def __init__(self, home: Path, file: Path) -> None:
        super().__init__(home)
        self.file = file
        self.env["CHATROOM_CLUSTER"] = str(file)
        self.port = 0

    def processes(self) -> dict[str, dict[str, Any]]:
        status = self.run("cluster ps --json").json()
        assert status["cluster"] == "team"
        return {entry["name"]: entry for entry in status["processes"]}

    def events(self) -> list[dict[str, Any]]:
        lines = self.run("cluster events --json").stdout.splitlines()
        return [json.loads(line) for line in lines]

    def wait(self, condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.run('cluster ps').stdout}")
            time.sleep(0.2)

    def shown(self, name: str) -> list[int]:
        log = (self.home / "clusters" / "team" / "clients" / f"{name}.log").read_text()
        return [int(m["seq"]) for line in log.splitlines() if (m := NOTE_LINE.match(line))]

    def send(self, member: str, text: str) -> int:
        env = self.run("cluster env --json").json()
        saved = dict(self.env)
        self.env.update(env)
        try:
            sent = self.run(f"send --as {member} --group team '{text}'").stdout
        finally:
            self.env = saved
        return int(sent.split("#")[1].split()[0])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    cli = Cluster(root / "home", root / "chatroom.toml")
    cli.run(f"cluster init {cli.file}")
    port = 51000 + os.getpid() % 1000 * 3  # three replicas at most, apart from other runs'
    cli.file.write_text(cli.file.read_text().replace("port = 50061", f"port = {port}"))
    cli.port = port
    try:
        yield cli
    finally:
        cli.run("cluster down", check=False, timeout_s=CLUSTER_TIMEOUT_S)


def _restarted(cluster: Cluster, name: str, old_pid: int) -> bool:
    entry = cluster.processes()[name]
    return bool(entry["state"] == "running" and entry["pid"] != old_pid)


def _went_through_backoff(cluster: Cluster, name: str, pid: int) -> bool:
    """The events after the kill: exited by SIGKILL, restarting (backoff), started, ready."""
    events = [e for e in cluster.events() if e["type"] == "process" and e["name"] == name]
    killed = next((i for i, e in enumerate(events) if e["event"] == "exited" and e.get("code") == -9), None)
    later = [e["event"] for e in events[killed:]] if killed is not None else []
    return later[:4] == ["exited", "restarting", "started", "ready"]


def test_up_brings_the_example_to_running(cluster: Cluster) -> None:
    cluster.run("cluster up", timeout_s=CLUSTER_TIMEOUT_S)
    processes = cluster.processes()
    assert sorted(processes) == ["alice", "bob", "chad", "server-1", "server-2", "storage"]
    assert {entry["state"] for entry in processes.values()} == {"running"}
    assert all(entry["pid"] for entry in processes.values())
    assert processes["server-1"]["address"] == f"127.0.0.1:{cluster.port}"
    assert processes["server-2"]["health"] == "SERVING"
    assert processes["bob"]["member"] == "bob" and processes["bob"]["group"] == "team"
    assert sum(processes[s]["sessions"] for s in ("server-1", "server-2")) == 3


def test_a_second_up_and_a_bad_file_are_one_line_each(cluster: Cluster, tmp_path: Path) -> None:
    again = cluster.run("cluster up", check=False)
    assert again.code != 0
    assert again.stderr.count("\n") == 1 and "already up" in again.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "team"\n[server]\nreplicas = "two"\n')
    broken = cluster.run(f"cluster up -f {bad}", check=False)
    assert broken.code != 0
    assert broken.stderr.strip() == f"error: {bad}: server.replicas: must be a whole number, not 'two'"


def test_a_killed_replica_backs_off_and_runs_again(cluster: Cluster) -> None:
    pid = cluster.processes()["server-1"]["pid"]
    psutil.Process(pid).send_signal(signal.SIGKILL)
    cluster.wait(lambda: _restarted(cluster, "server-1", pid), "server-1 to run again")
    assert cluster.processes()["server-1"]["restarts"] == 1
    assert _went_through_backoff(cluster, "server-1", pid), cluster.run("cluster events").stdout


def test_a_killed_client_comes_back_and_shows_what_it_missed_once(cluster: Cluster) -> None:
    pid = cluster.processes()["bob"]["pid"]
    psutil.Process(pid).send_signal(signal.SIGKILL)
    missed = cluster.send("alice", "while bob was down")
    cluster.wait(lambda: _restarted(cluster, "bob", pid), "bob to run again")
    cluster.wait(lambda: missed in cluster.shown("bob"), "bob to show what he missed")
    assert cluster.processes()["bob"]["restarts"] == 1
    assert _went_through_backoff(cluster, "bob", pid)
    assert cluster.shown("bob").count(missed) == 1


def test_scale_servers_up_and_down(cluster: Cluster) -> None:
    for pair, line in (("alice=100000", "at most 64 sessions"), ("server=17", "at most 16 replicas")):
        refused = cluster.run(f"cluster scale {pair}", check=False)
        assert refused.code != 0 and line in refused.stderr, refused.stderr
    cluster.run("cluster scale server=3", timeout_s=CLUSTER_TIMEOUT_S)
    processes = cluster.processes()
    assert processes["server-3"]["state"] == "running" and processes["server-3"]["health"] == "SERVING"
    third = processes["server-3"]["pid"]
    cluster.run("cluster scale server=1", timeout_s=CLUSTER_TIMEOUT_S)
    processes = cluster.processes()
    assert [name for name in processes if name.startswith("server")] == ["server-1"]
    assert not psutil.pid_exists(third) or psutil.Process(third).status() == psutil.STATUS_ZOMBIE
    cluster.wait(
        lambda: all(cluster.processes()[c]["state"] == "running" for c in ("alice", "bob", "chad")),
        "the clients to be subscribed to server-1",
    )
    refused = cluster.run("cluster rollout restart", check=False)
    assert refused.code != 0 and "would leave no replica SERVING" in refused.stderr
    cluster.run("cluster scale server=2", timeout_s=CLUSTER_TIMEOUT_S)


def test_rollout_restart_under_steady_sending_loses_and_repeats_nothing(cluster: Cluster) -> None:
    env = {**cluster.env, **cluster.run("cluster env --json").json()}
    sender = subprocess.Popen(
        [sys.executable, "-c", _STEADY_SENDER],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        rolled = cluster.run("cluster rollout restart --json", timeout_s=CLUSTER_TIMEOUT_S).json()
    finally:
        sender.terminate()
        sent = [int(line) for line in sender.communicate(timeout=TIMEOUT_S)[0].split()]
    assert [step["name"] for step in rolled["steps"]] == ["server-1", "server-2"]
    assert all(step["seconds"] > 0 for step in rolled["steps"])
    assert len(sent) > 5, "the sender kept sending during the rollout"
    head = max(sent)
    for reader in ("bob", "chad"):
        cluster.wait(lambda r=reader: head in cluster.shown(r), f"{reader} to show #{head}")  # type: ignore[misc]
        shown = cluster.shown(reader)
        assert shown == sorted(set(shown)), f"{reader} showed a note twice or out of order"
        assert set(sent) <= set(shown), f"{reader} missed {sorted(set(sent) - set(shown))}"
    verified = cluster.run("cluster verify --json", timeout_s=CLUSTER_TIMEOUT_S).json()
    assert verified["ok"], verified


_STEADY_SENDER = """
import os, sys, time
from pathlib import Path
from clients import SyncChatClient
token = (Path(os.environ["CHATROOM_HOME"]) / "tokens" / "alice.token").read_text().strip()
with SyncChatClient(os.environ["CHATROOM_SERVER"], token) as client:
    while True:
        note = client.send("team", f"steady {time.monotonic():.3f}")
        print(note.seq, flush=True)
        time.sleep(0.1)
"""


def test_down_leaves_nothing_alive_and_up_resumes_the_same_data(cluster: Cluster) -> None:
    before = cluster.processes()
    pids = [entry["pid"] for entry in before.values()]
    supervisor = int((cluster.home / "clusters" / "team" / "supervisor.lock").read_text())
    shown = cluster.shown("bob")
    cluster.run("cluster down", timeout_s=CLUSTER_TIMEOUT_S)
    for pid in [*pids, supervisor]:
        alive = psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        assert not alive, f"pid {pid} is still alive after down"
    cluster.run("cluster up", timeout_s=CLUSTER_TIMEOUT_S)
    after = cluster.send("alice", "after up again")
    assert after == max(shown) + 1  # the group's seqs go on: the data survived
    cluster.wait(lambda: after in cluster.shown("bob"), "bob to show the first note after up")
    assert cluster.shown("bob")[: len(shown)] == shown
    assert cluster.shown("bob").count(after) == 1
