"""Shared fixtures: a real server on 127.0.0.1 (ephemeral port) over each storage
backend, channels, fresh names."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest

from tests.databases import BACKENDS, postgres_database
from tests.support import Admin, ServerProcess

_names = itertools.count(1)


@pytest.fixture
def name() -> str:
    """A group or member name no other test uses."""
    return f"t{next(_names)}"


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def database_for(backend: str, directory: Path, stack: ExitStack) -> str:
    if backend == "postgres":
        return stack.enter_context(postgres_database())
    return str(directory / "chatroom.db")


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("server")
    with ExitStack() as stack:
        process = ServerProcess(home, db=database_for(backend, home, stack)).start()
        stack.callback(process.stop)
        yield process


@pytest.fixture
def fresh_server(backend: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own, for tests that stop, kill or restart it."""
    with ExitStack() as stack:
        process = ServerProcess(tmp_path / "home", db=database_for(backend, tmp_path, stack)).start()
        stack.callback(process.stop)
        yield process


@pytest.fixture
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with server.channel() as channel:
        yield channel


@pytest.fixture
def admin(server: ServerProcess, channel: grpc.Channel) -> Admin:
    return server.admin(channel)
