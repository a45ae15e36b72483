"""chatctl server start|stop|status."""

from __future__ import annotations

import inspect
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from admin_cli import processes
from admin_cli.output import duration, fail, info, print_json, table
from admin_cli.output import out as console
from admin_cli.settings import Json, client_tls, state_dir
from services.config import Option, server_options
from services.state_dir import default_db, ensure_admin_token

app = typer.Typer(help="Run the chatroom server.", no_args_is_help=True)

READY_TIMEOUT_S = 30.0
RECORD_FILE = "server.json"
LOG_FILE = "server.log"
STOP_TIMEOUT_S = 15.0
"""Longer than the default shutdown grace (10 s), so that a drain is not cut short."""


def record_path() -> Path:
    return state_dir() / RECORD_FILE


def running_server() -> processes.ProcessRecord | None:
    record = processes.ProcessRecord.load(record_path())
    return record if record is not None and record.alive else None


def _typer_option(option: Option) -> inspect.Parameter:
    """The declared option as a Typer parameter: its flag, variable, help, limit and default."""
    metadata = option.field.metadata
    kind: Any = get_type_hints(option.owner)[option.field.name]
    if metadata["parse"] is not None:  # given as text (a duration), checked where it is declared
        kind = str | None
    declared = typer.Option(
        option.flag,
        envvar=option.envvar,
        help=option.help,
        rich_help_panel=metadata["panel"] or None,
        min=metadata["min"] if metadata["parse"] is None else None,
        metavar=metadata["metavar"],
        show_default=option.field.default not in (None, ""),
    )
    return inspect.Parameter(
        option.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=option.field.default,
        annotation=Annotated[kind, declared],
    )


def with_server_options(command: Any) -> Any:
    """Gives command (which takes **options) a keyword parameter for every declared server option."""
    signature = inspect.signature(command)
    hints = get_type_hints(command, include_extras=True)
    own = [
        parameter.replace(annotation=hints[parameter.name])
        for parameter in signature.parameters.values()
        if parameter.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    parameters = own + [_typer_option(option) for option in server_options()]
    command.__signature__ = signature.replace(parameters=parameters)
    command.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return command


@app.command(epilog="Example: chatctl server start --detach && chatctl group create team --members alice,bob")
@with_server_options
def start(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background (log in the state directory).")
    ] = False,
    **options: Any,
) -> None:
    """Start the server: in the foreground, or in the background with --detach."""
    existing = running_server()
    if existing is not None:
        fail(
            f"a server is already running from {state_dir()} (pid {existing.pid},"
            f" {existing.details.get('address')}): stop it with 'chatctl server stop'"
        )
    config = _config(options)
    state_dir().mkdir(parents=True, exist_ok=True)
    if detach:
        record = start_detached(_as_flags(options))
        info(f"server started: pid {record.pid}, listening on {record.details['address']}, log {record.log}")
        return
    _run_foreground(config)


def _config(options: dict[str, Any]) -> Any:
    """The ServerConfig these options make, or one line saying what is wrong with them."""
    from services.config import config_from_options
    from services.storage import check_db

    values = dict(options)
    try:
        for option in server_options():
            parse = option.field.metadata["parse"]
            if parse is not None and values.get(option.name) is not None:
                values[option.name] = parse(values[option.name])
        values["db"] = check_db(values.get("db") or default_db(state_dir()))
        token = os.environ.get("CHATROOM_ADMIN_TOKEN") or ensure_admin_token(state_dir())
        return config_from_options(token, values)
    except ValueError as error:
        fail(str(error))


def _as_flags(options: dict[str, Any]) -> list[str]:
    """The options given (or read from the environment), as flags for a server process of its own."""
    return [
        f"{option.flag}={options[option.name]}"
        for option in server_options()
        if options.get(option.name) not in (None, "", option.field.default)
    ]


def _run_foreground(config: Any) -> None:
    import asyncio

    from services import logs
    from services.core.errors import ChatroomError
    from services.server import BindError, ChatServer, serve

    logs.configure(config.log_format)
    path = record_path()

    def on_ready(server: ChatServer) -> None:
        log = os.environ.get("CHATROOM_SERVER_LOG", "")
        details = {
            "address": server.address,
            "db": config.db,
            "tls": config.tls.describe() if config.tls else None,
            "health_address": server.health_address or None,
        }
        processes.ProcessRecord.of("server", os.getpid(), log, **details).save(path)

    try:
        asyncio.run(serve(config, on_ready))
    except (BindError, ChatroomError) as error:
        fail(str(error))
    finally:
        record = processes.ProcessRecord.load(path)
        if record is not None and record.pid == os.getpid():
            path.unlink(missing_ok=True)


def start_detached(options: list[str]) -> processes.ProcessRecord:
    """Starts `server start OPTIONS` in the background and waits until it serves."""
    log = state_dir() / LOG_FILE
    env = {**os.environ, "CHATROOM_SERVER_LOG": str(log)}
    argv = [sys.executable, "-m", "admin_cli", "server", "start", *options]
    process = processes.spawn(argv, log, env=env)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fail(f"the server exited at start (code {process.returncode}): {_last_line(log)}")
        record = processes.ProcessRecord.load(record_path())
        if record is not None and record.pid == process.pid:
            return record  # written once the server is up and its health says SERVING
        time.sleep(processes.POLL_INTERVAL_S)
    fail(f"the server did not become ready within {READY_TIMEOUT_S:.0f} s; see {log}")


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


@app.command(epilog="Example: chatctl server stop")
def stop(
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds to wait after SIGTERM before SIGKILL.")
    ] = STOP_TIMEOUT_S,
) -> None:
    """Stop the server started from this state directory (SIGTERM, then wait)."""
    record = processes.ProcessRecord.load(record_path())
    if record is None or not record.alive:
        info(f"no server is running from {state_dir()}")
        return
    outcome = record.process.stop(timeout)
    record_path().unlink(missing_ok=True)
    info(f"server {outcome} (pid {record.pid})")


def _health(record: processes.ProcessRecord) -> str:
    from admin_cli.admin_api import health_status

    if record.details.get("health_address"):
        return health_status(record.details["health_address"])
    if record.details.get("tls") and client_tls() is None:
        return "unknown: the server uses TLS; set CHATROOM_TLS_CA to check it"
    return health_status(record.details["address"], tls=client_tls())


@app.command(epilog="Example: chatctl server status --json")
def status(as_json: Json = False) -> None:
    """Show address, pid, uptime, storage and health of the local server."""
    record = processes.ProcessRecord.load(record_path())
    if record is None or not record.alive:
        if as_json:
            print_json({"running": False})
        else:
            info(f"no server is running from {state_dir()}")
        raise typer.Exit(3)
    address = record.details["address"]
    report = {
        "running": True,
        "pid": record.pid,
        "address": address,
        "uptime_s": round(time.time() - record.started_at, 1),
        "storage": record.details.get("db"),
        "health": _health(record),
        "tls": record.details.get("tls") or "plaintext",
        "log": record.log or None,
    }
    if as_json:
        print_json(report)
        return
    rows = [
        ("address", address),
        ("pid", record.pid),
        ("uptime", duration(time.time() - record.started_at)),
        ("storage", report["storage"]),
        ("security", report["tls"]),
        ("health", report["health"]),
        ("log", record.log or "stderr of its terminal"),
    ]
    console.print(table(None, ("", ""), rows))
