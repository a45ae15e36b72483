"""The image and the compose file on a real Docker engine.

The image is built from this checkout and run on the host network the way Kubernetes runs
it (read-only root filesystem, every capability dropped); the three scenarios of the
design run against it through this machine's chatctl, and SIGTERM stops it with exit
code 0 while clients are still connected. Then `docker compose up` (with the host-network
override) must show the conversation of alice, bob and chad in their logs, and
`docker compose down -v` must leave nothing behind.
"""

from __future__ import annotations

import re
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.deploy.docker import ComposeProject, Container, Docker, free_port, wait_for
from tests.deploy.tools import REPO, describe
from tests.e2e import test_scenarios as scenarios
from tests.e2e.conftest import Chatctl

pytestmark = pytest.mark.container

ADMIN_TOKEN = "container-test-admin-token"
USER = "10001:10001"
# The official python:3.11-slim is about 125 MB: what the image adds must stay below
# 75 MB for the whole image to stay below 200 MB.
MAX_ADDED_MB = 75
BASE_IMAGE = "python:3.11-slim"
COMPOSE_TIMEOUT_S = 180.0
# What each client says in docker-compose.yml.
GREETINGS = {"alice": "Hi team, this is Alice.", "bob": "Hi all, Bob here.", "chad": "Hello from Chad."}
NOTE = re.compile(r"^\[team #(?P<seq>\d+) [\d:]+\] (?P<sender>\w+): (?P<text>.*)$")
SENT = re.compile(r"^\* sent #(?P<seq>\d+): (?P<text>.*)$")

# The three scenarios of the design, as tests/e2e runs them against a local server.
Scenario = Callable[[Chatctl], None]
SCENARIOS: dict[str, Scenario] = {
    "1-late-members-get-the-backlog": (
        scenarios.test_scenario_1_bob_and_chad_come_online_later_and_get_everything
    ),
    "2-no-echo-to-the-sender": scenarios.test_scenario_2_bob_sends_and_does_not_get_his_own_note,
    "3-outsider-gets-nothing": scenarios.test_scenario_3_alice_is_not_echoed_and_doug_gets_nothing,
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def server(docker: Docker, image: str) -> Iterator[Container]:
    """The image as a server on a free port, hardened as in k8s/, healthy."""
    container = Container(docker, unique("chatroom-test"), address=f"127.0.0.1:{free_port()}")
    try:
        container.start(
            image,
            "--read-only",
            "--tmpfs=/var/lib/chatroom:uid=10001,gid=10001,mode=0700",
            "--tmpfs=/tmp",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            f"--env=CHATROOM_LISTEN={container.address}",
            f"--env=CHATROOM_METRICS_LISTEN=127.0.0.1:{free_port()}",
            f"--env=CHATROOM_ADMIN_TOKEN={ADMIN_TOKEN}",
        )
        container.wait_healthy()
        yield container
    finally:
        container.remove()


def test_image_is_small_runs_as_non_root_and_has_no_build_tools(
    docker: Docker,
    image: str,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    inspected = docker.inspect("image", image)
    config = inspected["Config"]
    assert isinstance(config, dict)
    assert config["User"] == USER
    assert config["Entrypoint"] == ["chatctl", "server", "start"]
    assert "CHATROOM_LISTEN=0.0.0.0:50051" in config["Env"]
    assert config["Healthcheck"]["Test"][0] == "CMD"

    size_mb = int(str(inspected["Size"])) / 1e6
    base_mb = int(str(docker.inspect("image", BASE_IMAGE)["Size"])) / 1e6
    record_property("image_size_mb", round(size_mb, 1))
    with capsys.disabled():
        print(
            f"\n{image}: {size_mb:.1f} MB, of which {BASE_IMAGE} {base_mb:.1f} MB and chatroom with its"
            f" dependencies {size_mb - base_mb:.1f} MB"
        )
    assert size_mb - base_mb < MAX_ADDED_MB

    script = "id -u; for tool in gcc cc make strip git; do command -v $tool || true; done"
    probe = docker.run("run", "--rm", "--network", "host", "--entrypoint", "sh", image, "-c", script)
    assert probe.returncode == 0, describe(probe)
    uid, *tools = probe.stdout.split()
    assert uid == "10001"
    assert tools == [], f"build tools in the image: {tools}"


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_scenario_against_the_image(server: Container, tmp_path: Path, scenario: Scenario) -> None:
    status = server.exec("cat", "/proc/1/status")
    uids = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
    assert uids is not None and uids[1] == "10001", "the server (PID 1) runs as chatroom"
    command = server.exec("cat", "/proc/1/cmdline").split("\0")
    assert Path(command[0]).name.startswith("python"), f"PID 1 is the server, not a shell: {command}"
    assert [Path(command[1]).name, *command[2:4]] == ["chatctl", "server", "start"], command

    team = Chatctl(tmp_path / "home")
    team.env["CHATROOM_SERVER"] = server.address
    team.env["CHATROOM_ADMIN_TOKEN"] = ADMIN_TOKEN
    try:
        team.run("group create team --members alice,bob,chad")
        scenario(team)
        assert team.run("health").code == 0
        # SIGTERM with the clients still connected: a graceful drain and exit code 0.
        assert server.terminate() == 0, server.logs()
        assert "shutting down" in server.logs()
    finally:
        team.run("client stop --all", check=False)


def conversation_problems(logs: dict[str, str]) -> list[str]:
    """What is still missing from the three clients' logs (nothing once the talk is complete)."""
    problems = []
    seqs: dict[str, set[int]] = {member: set() for member in GREETINGS}
    for member, own in GREETINGS.items():
        lines = logs[member].splitlines()
        notes = [m for m in map(NOTE.match, lines) if m]
        sent = [m for m in map(SENT.match, lines) if m and m["text"] == own]
        if not any(line.startswith("* subscribed to team on ") for line in lines):
            problems.append(f"{member} has not subscribed")
        if not sent:
            problems.append(f"{member} has not sent {own!r}")
        else:
            seqs[member].add(int(sent[0]["seq"]))
        for other, text in GREETINGS.items():
            got = [m for m in notes if m["sender"] == other and m["text"] == text]
            if other == member and got:
                problems.append(f"{member} got its own note back")
            elif other != member and not got:
                problems.append(f"{member} has not received {other}'s {text!r}")
            for match in got:
                seqs[other].add(int(match["seq"]))
    for member, numbers in seqs.items():
        if len(numbers) > 1:
            problems.append(f"{member}'s note has different seqs in different logs: {sorted(numbers)}")
    return problems


@pytest.fixture
def compose(docker: Docker, image: str, postgres_image: str) -> Iterator[ComposeProject]:
    """docker-compose.yml with the host-network override, as a project of the test's own
    on free ports; `docker compose down -v` at the end must leave nothing behind."""
    ports = {
        "CHATROOM_HOSTNET_PG_PORT": free_port(),
        "CHATROOM_HOSTNET_PORT_1": free_port(),
        "CHATROOM_HOSTNET_PORT_2": free_port(),
        "CHATROOM_HOSTNET_METRICS_PORT_1": free_port(),
        "CHATROOM_HOSTNET_METRICS_PORT_2": free_port(),
    }
    env = {
        "CHATROOM_IMAGE": image,
        "POSTGRES_IMAGE": postgres_image,
        "CHATROOM_ADMIN_TOKEN": ADMIN_TOKEN,
        **{name: str(port) for name, port in ports.items()},
    }
    files = [REPO / "docker-compose.yml", REPO / "docker-compose.hostnet.yml"]
    project = ComposeProject(docker, unique("chatroom-test"), files, env)
    try:
        yield project
    finally:
        project.down()


def test_compose_up_shows_the_conversation(compose: ComposeProject) -> None:
    up = compose.run("up", "--build", "--detach")
    assert up.returncode == 0, f"{describe(up)}\n{compose.logs()}"

    def member_logs() -> dict[str, str]:
        return {member: compose.logs(member, prefix=False) for member in GREETINGS}

    wait_for(
        lambda: not conversation_problems(member_logs()),
        COMPOSE_TIMEOUT_S,
        lambda: f"{conversation_problems(member_logs())}\n{compose.logs()}",
    )
    logs = member_logs()
    server_1, server_2 = (compose.env[f"CHATROOM_HOSTNET_PORT_{n}"] for n in (1, 2))
    assert f"on 127.0.0.1:{server_1} as alice" in logs["alice"]
    assert f"on 127.0.0.1:{server_2} as bob" in logs["bob"]  # notes crossed between the replicas

    states = compose.states()
    assert states["setup"]["State"] == "exited" and states["setup"]["ExitCode"] == 0, states["setup"]
    for service in ("postgres", "server-1", "server-2"):
        assert states[service]["Health"] == "healthy", states[service]

    metrics = f"http://127.0.0.1:{compose.env['CHATROOM_HOSTNET_METRICS_PORT_1']}/metrics"
    with urllib.request.urlopen(metrics, timeout=10) as response:
        assert re.search(r"^chatroom_\w+ ", response.read().decode(), re.MULTILINE)
