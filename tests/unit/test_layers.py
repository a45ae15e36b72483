"""The layers hold: the delivery core runs without gRPC, metrics or a database
driver, and chatctl's help without the server or the transport.

Each check runs in a fresh interpreter, since this one has long imported all."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

EDGE_LIBRARIES = ("grpc", "prometheus_client", "asyncpg")


def modules_loaded_by(code: str) -> set[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_the_core_imports_no_grpc_metrics_or_driver() -> None:
    walk = (
        "import importlib, pkgutil, services.core\n"
        "for module in pkgutil.walk_packages(services.core.__path__, 'services.core.'):\n"
        "    importlib.import_module(module.name)"
    )
    loaded = modules_loaded_by(walk)
    assert top_level(loaded).isdisjoint(EDGE_LIBRARIES), sorted(top_level(loaded) & set(EDGE_LIBRARIES))
    assert not {
        name for name in loaded if name.startswith("services.") and not name.startswith("services.core")
    }


@pytest.mark.parametrize("engine", ["sqlite", "memory"])
def test_a_store_without_postgres_loads_no_driver(engine: str) -> None:
    loaded = modules_loaded_by(f"import services.storage.{engine}")
    assert "asyncpg" not in top_level(loaded)


@pytest.mark.parametrize("args", [["--help"], []], ids=["--help", "no arguments"])
def test_chatctl_help_loads_no_command_transport_or_server(args: list[str]) -> None:
    """--help and argument errors must be instant: a command's module loads when that command runs,
    gRPC when a command talks to a server."""
    help_run = (
        "from admin_cli.main import app\n"
        "try:\n"
        f"    app({args!r}, prog_name='chatctl')\n"
        "except SystemExit:\n"
        "    pass"
    )
    loaded = modules_loaded_by(help_run)
    heavy = top_level(loaded) & {
        *EDGE_LIBRARIES,
        "google",
        "prompt_toolkit",
        "chatroom",
        "clients",
        "services",
    }
    assert not heavy, sorted(heavy)
    assert {name for name in loaded if name.startswith("admin_cli")} == {"admin_cli", "admin_cli.main"}
