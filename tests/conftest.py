"""Shared fixtures: a real server on 127.0.0.1 (ephemeral port), channels, fresh names."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.support import Admin, ServerProcess

_names = itertools.count(1)


@pytest.fixture
def name() -> str:
    """A group or member name no other test uses."""
    return f"t{next(_names)}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("server")).start()
    yield process
    process.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own, for tests that stop, kill or restart it."""
    process = ServerProcess(tmp_path / "home").start()
    yield process
    process.stop()


@pytest.fixture
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with server.channel() as channel:
        yield channel


@pytest.fixture
def admin(server: ServerProcess, channel: grpc.Channel) -> Admin:
    return server.admin(channel)
