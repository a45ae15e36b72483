"""chatctl server start|stop|status."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from admin_cli import processes
from admin_cli.admin_api import health_status
from admin_cli.output import duration, fail, info, print_json, table
from admin_cli.output import out as console
from admin_cli.settings import Json, state_dir
from services.config import DEFAULT_LISTEN, DEFAULT_SHUTDOWN_GRACE_S, ServerConfig
from services.core.chatroom import ChatroomSettings
from services.logs import LogFormat
from services.state_dir import default_db, ensure_admin_token

app = typer.Typer(help="Run the chatroom server.", no_args_is_help=True)

READY_TIMEOUT_S = 30.0
RECORD_FILE = "server.json"
LOG_FILE = "server.log"
DEFAULTS = ChatroomSettings()

Listen = Annotated[str, typer.Option("--listen", envvar="CHATROOM_LISTEN", help="host:port to listen on.")]
Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="CHATROOM_DB",
        help="A SQLite file or a postgresql:// URL. Default: SQLite in the state directory.",
    ),
]


def record_path() -> Path:
    return state_dir() / RECORD_FILE


def running_server() -> processes.ProcessRecord | None:
    record = processes.ProcessRecord.load(record_path())
    return record if record is not None and record.alive else None


@app.command(epilog="Example: chatctl server start --detach && chatctl group create team --members alice,bob")
def start(
    listen: Listen = DEFAULT_LISTEN,
    db: Db = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background (log in the state directory).")
    ] = False,
    max_unacked: Annotated[
        int,
        typer.Option(
            envvar="CHATROOM_MAX_UNACKED", min=1, help="Notes a session may be sent beyond its cursor."
        ),
    ] = DEFAULTS.max_unacked,
    max_text_bytes: Annotated[
        int, typer.Option(envvar="CHATROOM_MAX_TEXT_BYTES", min=1, help="Longest note text in bytes.")
    ] = DEFAULTS.max_text_bytes,
    metrics_listen: Annotated[
        str,
        typer.Option(envvar="CHATROOM_METRICS_LISTEN", help="host:port for Prometheus /metrics; empty: off."),
    ] = "",
    ack_flush_interval: Annotated[
        float,
        typer.Option(
            envvar="CHATROOM_ACK_FLUSH_INTERVAL",
            min=0.001,
            help="Seconds an ack may wait before it is written.",
        ),
    ] = DEFAULTS.ack_flush_interval_s,
    shutdown_grace: Annotated[
        float,
        typer.Option(envvar="CHATROOM_SHUTDOWN_GRACE", min=0, help="Seconds unary calls get on shutdown."),
    ] = DEFAULT_SHUTDOWN_GRACE_S,
    log_format: Annotated[
        LogFormat, typer.Option(envvar="CHATROOM_LOG_FORMAT", help="plain or json.")
    ] = "plain",
) -> None:
    """Start the server: in the foreground, or in the background with --detach."""
    existing = running_server()
    if existing is not None:
        fail(
            f"a server is already running from {state_dir()} (pid {existing.pid},"
            f" {existing.details.get('address')}): stop it with 'chatctl server stop'"
        )
    home = state_dir()
    home.mkdir(parents=True, exist_ok=True)
    options = [
        f"--listen={listen}",
        f"--metrics-listen={metrics_listen}",
        f"--db={db or default_db(home)}",
        f"--max-unacked={max_unacked}",
        f"--max-text-bytes={max_text_bytes}",
        f"--ack-flush-interval={ack_flush_interval}",
        f"--shutdown-grace={shutdown_grace}",
        f"--log-format={log_format}",
    ]
    if detach:
        record = start_detached(options)
        info(f"server started: pid {record.pid}, listening on {record.details['address']}, log {record.log}")
        return
    config = ServerConfig(
        db=db or default_db(home),
        admin_token=os.environ.get("CHATROOM_ADMIN_TOKEN") or ensure_admin_token(home),
        listen=listen,
        metrics_listen=metrics_listen,
        shutdown_grace_s=shutdown_grace,
        chatroom=ChatroomSettings(
            max_text_bytes=max_text_bytes, max_unacked=max_unacked, ack_flush_interval_s=ack_flush_interval
        ),
    )
    _run_foreground(config, log_format)


def _run_foreground(config: ServerConfig, log_format: LogFormat) -> None:
    from services import logs
    from services.server import BindError, serve

    logs.configure(log_format)
    path = record_path()

    def on_ready(address: str) -> None:
        ticks = processes.start_ticks(os.getpid()) or 0
        log = os.environ.get("CHATROOM_SERVER_LOG", "")
        details = {"address": address, "db": config.db}
        processes.ProcessRecord("server", os.getpid(), ticks, time.time(), log, details).save(path)

    try:
        asyncio.run(serve(config, on_ready))
    except BindError as error:
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
            address = record.details["address"]
            if health_status(address) == "SERVING":
                return record
        time.sleep(processes.POLL_INTERVAL_S)
    fail(f"the server did not become ready within {READY_TIMEOUT_S:.0f} s; see {log}")


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


@app.command(epilog="Example: chatctl server stop")
def stop(
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds to wait after SIGTERM before SIGKILL.")
    ] = DEFAULT_SHUTDOWN_GRACE_S + 5,
) -> None:
    """Stop the server started from this state directory (SIGTERM, then wait)."""
    record = processes.ProcessRecord.load(record_path())
    if record is None or not record.alive:
        info(f"no server is running from {state_dir()}")
        return
    outcome = processes.stop(record.pid, record.start_ticks, timeout)
    record_path().unlink(missing_ok=True)
    info(f"server {outcome} (pid {record.pid})")


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
        "health": health_status(address),
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
        ("health", report["health"]),
        ("log", record.log or "stderr of its terminal"),
    ]
    console.print(table(None, ("", ""), rows))
