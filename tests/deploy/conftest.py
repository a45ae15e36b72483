"""Fixtures for the container tests: the engine, the chatroom image, a PostgreSQL image.

Tests marked `container` run when asked for (`pytest -m container tests/deploy`, as
.ci/containers.sh does, or CHATROOM_TEST_CONTAINERS=1): a plain `pytest` stays fast and
leaves the engine alone. Asked for without an engine that answers, they are skipped with
the reason.
"""

from __future__ import annotations

import os

import pytest

from tests.deploy.docker import Docker, EngineMissing
from tests.deploy.tools import REPO

IMAGE = "chatroom:test"
POSTGRES_STAND_IN = "chatroom-test-postgres:15"
POSTGRES_OFFICIAL = "postgres:16"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    asked = "container" in (config.option.markexpr or "") or os.environ.get("CHATROOM_TEST_CONTAINERS") == "1"
    if asked:
        return
    skip = pytest.mark.skip(
        reason="container tests run when asked for: pytest -m container tests/deploy (or .ci/containers.sh)"
    )
    for item in items:
        if item.get_closest_marker("container") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def docker() -> Docker:
    try:
        return Docker.connect()
    except EngineMissing as missing:
        pytest.skip(f"container tests need a Docker engine: {missing}")


@pytest.fixture(scope="session")
def image(docker: Docker) -> str:
    """The chatroom image, built from this checkout (classic builder or BuildKit alike)."""
    docker.build(IMAGE, REPO)
    return IMAGE


@pytest.fixture(scope="session")
def postgres_image(docker: Docker) -> str:
    """What the compose file's `postgres` service runs in the test.

    CHATROOM_TEST_POSTGRES_IMAGE if set; else the official postgres:16 if the engine has it;
    else a stand-in built here from Debian's PostgreSQL (tests/deploy/postgres), for engines
    that cannot pull from a registry.
    """
    if chosen := os.environ.get("CHATROOM_TEST_POSTGRES_IMAGE"):
        return chosen
    if docker.has_image(POSTGRES_OFFICIAL):
        return POSTGRES_OFFICIAL
    docker.build(POSTGRES_STAND_IN, REPO / "tests" / "deploy" / "postgres")
    return POSTGRES_STAND_IN
