"""chatctl demo against someone's running server: it touches only what it made, and removes it."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import psutil
import pytest

from admin_cli.processes import Watched
from tests.e2e.conftest import CHATCTL, Chatctl
from tests.support import TIMEOUT_S

DEMO_TIMEOUT_S = 120.0
CLUSTER_DEMO_TIMEOUT_S = 240.0


def groups(chatctl: Chatctl) -> list[str]:
    listed = chatctl.run("group list --json").json()
    return [group["group"] for group in listed]


def test_demo_on_a_running_server_leaves_other_members_alone_and_nothing_behind(chatctl: Chatctl) -> None:
    server = chatctl.start_server()
    chatctl.run("group create ops --members doug,erin")
    chatctl.run("client start doug --group ops --detach")

    result = chatctl.run(f"demo --server {server} --gap 0", timeout_s=DEMO_TIMEOUT_S)

    assert result.stdout.rstrip().endswith("all 18 expectations met")
    assert chatctl.clients()["doug"]["alive"], chatctl.log("doug")
    chatctl.run('send --as doug --group ops "my token still works"')
    chatctl.run('send --as erin --group ops "and my client still receives"')
    chatctl.wait_for_note("doug", "erin", "and my client still receives")
    assert "token was replaced" not in chatctl.log("doug")
    assert groups(chatctl) == ["ops"]


def test_an_interrupted_demo_deletes_its_group(chatctl: Chatctl) -> None:
    server = chatctl.start_server()
    demo = Watched([CHATCTL, "demo", "--server", server, "--gap", "600"], env=chatctl.env)
    try:
        waiting = demo.wait_for_line(lambda line: "pass with Bob and Chad offline" in line, TIMEOUT_S)
        assert waiting is not None, demo.output
        assert [group for group in groups(chatctl) if group.startswith("demo-")], "no demo group to clean up"
        demo.send(signal.SIGINT)
        assert demo.wait(TIMEOUT_S) == 130, demo.output
    finally:
        demo.stop(5)
    assert demo.lines[-1] == "error: demo interrupted", demo.output
    assert groups(chatctl) == []


def test_a_demo_that_cannot_run_says_why_in_one_line(chatctl: Chatctl) -> None:
    no_token = chatctl.run("demo --server 127.0.0.1:1", check=False)
    assert no_token.code == 1
    assert no_token.stderr.startswith("error: no admin token: set CHATROOM_ADMIN_TOKEN")
    assert len(no_token.stderr.strip().splitlines()) == 1

    chatctl.env["CHATROOM_ADMIN_TOKEN"] = "some-token"
    unreachable = chatctl.run("demo --server 127.0.0.1:1", check=False)
    assert unreachable.code == 1
    assert unreachable.stderr.startswith("error: cannot reach the chatroom server at 127.0.0.1:1")
    assert len(unreachable.stderr.strip().splitlines()) == 1


def test_the_demo_prints_its_state_directory_as_it_is(chatctl: Chatctl, tmp_path: Path) -> None:
    # "[/]" would be a closing markup tag with nothing to close, "[bold]" a style that vanishes.
    odd = tmp_path / "odd [bold]name[" / "]x"
    odd.mkdir(parents=True)
    chatctl.env["TMPDIR"] = str(odd)

    result = chatctl.run("demo --gap 0 --keep", check=False, timeout_s=DEMO_TIMEOUT_S)

    assert result.code == 0, result.stderr
    started = re.search(r"^started a server on \S+ \(state in (.+)\)$", result.stdout, re.MULTILINE)
    assert started is not None, result.stdout
    home = Path(started[1])
    assert home.parent == odd and home.is_dir()
    assert result.stdout.rstrip().endswith(f"logs and state kept in {home}")


def cluster_processes(root: Path) -> list[str]:
    """Processes that still run from the cluster's state directory (supervisor, storage, replicas)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(root) in cmdline:
            found.append(cmdline)
    return found


def cluster_root(output: str) -> Path:
    started = re.search(r"^starting a cluster: .* \(state in (.+)\)$", output, re.MULTILINE)
    assert started is not None, output
    return Path(started[1])


@pytest.mark.postgres
@pytest.mark.slow
def test_the_cluster_demo_plays_on_two_replicas_verifies_and_leaves_nothing(chatctl: Chatctl) -> None:
    result = chatctl.run("demo --cluster --gap 0", timeout_s=CLUSTER_DEMO_TIMEOUT_S)

    assert result.stdout.rstrip().endswith("all 22 expectations met"), result.stdout
    root = cluster_root(result.stdout)
    assert re.search(r"^  alice comes online on 127\.0\.0\.1:(\d+)$", result.stdout, re.MULTILINE)
    assert "✓ alice is on one replica, bob and chad on the other" in result.stdout
    for member in ("alice", "bob", "chad"):
        assert f"✓ {member}'s console is whole (cluster verify)" in result.stdout
    assert "every client is whole (3 checked)" in result.stdout
    assert f"removed {root}" in result.stdout
    assert not root.exists()
    assert cluster_processes(root) == []


@pytest.mark.postgres
@pytest.mark.slow
def test_an_interrupted_cluster_demo_takes_the_cluster_down(chatctl: Chatctl) -> None:
    demo = Watched([CHATCTL, "demo", "--cluster", "--gap", "600"], env=chatctl.env)
    try:
        waiting = demo.wait_for_line(
            lambda line: "pass with Bob and Chad offline" in line, CLUSTER_DEMO_TIMEOUT_S
        )
        assert waiting is not None, demo.output
        root = cluster_root(demo.output)
        assert cluster_processes(root), "the cluster is not running"
        demo.send(signal.SIGINT)
        assert demo.wait(CLUSTER_DEMO_TIMEOUT_S) == 130, demo.output
    finally:
        demo.stop(5)
    assert demo.lines[-1] == "error: demo interrupted", demo.output
    assert not root.exists()
    assert cluster_processes(root) == []
