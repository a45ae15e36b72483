"""Shared fixtures: a real server on 127.0.0.1 (ephemeral port) over each storage
backend, channels, fresh names."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest

from tests.databases import BACKENDS, postgres_database, postgres_server
from tests.support import Admin, InProcessServer, ServerProcess

_names = itertools.count(1)


@pytest.fixture
def name() -> str:
    """A group or member name no other test uses."""
    return f"t{next(_names)}"


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server for the whole run (CHATROOM_TEST_POSTGRES, else an embedded one)."""
    with postgres_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def database(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of the module's own on the module's backend."""
    if backend == "postgres":
        with postgres_database(request.getfixturevalue("postgres_url")) as url:
            yield url
    else:
        yield str(tmp_path_factory.mktemp("sqlite") / "chatroom.db")


@pytest.fixture
def fresh_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own on the module's backend."""
    if backend == "postgres":
        with postgres_database(request.getfixturevalue("postgres_url")) as url:
            yield url
    else:
        yield str(tmp_path / "chatroom.db")


@pytest.fixture(scope="module")
def server(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """A server in this process, shared by the module's tests (each uses names of its own)."""
    running = InProcessServer(tmp_path_factory.mktemp("server"), db=database).start()
    yield running
    running.stop()


@pytest.fixture
def fresh_server(fresh_database: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own, for tests that stop, kill or restart it."""
    with ExitStack() as stack:
        process = ServerProcess(tmp_path / "home", db=fresh_database).start()
        stack.callback(process.stop)
        yield process


@pytest.fixture
def channel(server: InProcessServer) -> Iterator[grpc.Channel]:
    with server.channel() as channel:
        yield channel


@pytest.fixture
def admin(server: InProcessServer, channel: grpc.Channel) -> Admin:
    return server.admin(channel)
