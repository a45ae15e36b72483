"""chatctl server start|stop|status."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperOption

from admin_cli import processes
from admin_cli.admin_api import health_status
from admin_cli.output import duration, fail, info, print_json, table
from admin_cli.output import out as console
from admin_cli.settings import Json, client_tls, state_dir
from services.config import DEFAULT_LISTEN, DEFAULT_SHUTDOWN_GRACE_S, ServerConfig, ServerTls, Transport
from services.core.chatroom import ChatroomSettings
from services.core.errors import ChatroomError
from services.logs import LogFormat
from services.state_dir import default_db, ensure_admin_token

app = typer.Typer(help="Run the chatroom server.", no_args_is_help=True)

READY_TIMEOUT_S = 30.0
RECORD_FILE = "server.json"
LOG_FILE = "server.log"
DEFAULTS = ChatroomSettings()
TRANSPORT = Transport()

NETWORK, LIMITS, TLS_PANEL = "Network", "Limits", "TLS (plaintext unless a certificate is given)"


def _option(envvar: str, help: str, panel: str | None = None, **kwargs: Any) -> Any:
    return typer.Option(envvar=envvar, help=help, rich_help_panel=panel, **kwargs)


def record_path() -> Path:
    return state_dir() / RECORD_FILE


def running_server() -> processes.ProcessRecord | None:
    record = processes.ProcessRecord.load(record_path())
    return record if record is not None and record.alive else None


@app.command(epilog="Example: chatctl server start --detach && chatctl group create team --members alice,bob")
def start(
    ctx: typer.Context,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background (log in the state directory).")
    ] = False,
    db: Annotated[
        str | None,
        _option(
            "CHATROOM_DB", "A SQLite file or a postgresql:// URL. Default: SQLite in the state directory."
        ),
    ] = None,
    log_format: Annotated[LogFormat, _option("CHATROOM_LOG_FORMAT", "plain or json.")] = "plain",
    listen: Annotated[str, _option("CHATROOM_LISTEN", "host:port to listen on.", NETWORK)] = DEFAULT_LISTEN,
    health_listen: Annotated[
        str,
        _option(
            "CHATROOM_HEALTH_LISTEN", "host:port serving only health, in plaintext; empty: off.", NETWORK
        ),
    ] = "",
    metrics_listen: Annotated[
        str, _option("CHATROOM_METRICS_LISTEN", "host:port for Prometheus /metrics; empty: off.", NETWORK)
    ] = "",
    keepalive: Annotated[
        float, _option("CHATROOM_KEEPALIVE", "Seconds between pings to idle clients.", NETWORK, min=1)
    ] = TRANSPORT.keepalive_s,
    min_client_ping_interval: Annotated[
        float,
        _option(
            "CHATROOM_MIN_CLIENT_PING_INTERVAL",
            "Seconds a client must leave between keepalive pings.",
            NETWORK,
            min=0.1,
        ),
    ] = TRANSPORT.min_client_ping_interval_s,
    max_connection_age: Annotated[
        float,
        _option(
            "CHATROOM_MAX_CONNECTION_AGE",
            "Seconds before a connection is recycled; 0: never.",
            NETWORK,
            min=0,
        ),
    ] = TRANSPORT.max_connection_age_s,
    shutdown_grace: Annotated[
        float, _option("CHATROOM_SHUTDOWN_GRACE", "Seconds unary calls get on shutdown.", NETWORK, min=0)
    ] = DEFAULT_SHUTDOWN_GRACE_S,
    max_message_bytes: Annotated[
        int, _option("CHATROOM_MAX_MESSAGE_BYTES", "Largest request accepted.", LIMITS, min=1024)
    ] = TRANSPORT.max_message_bytes,
    max_text_bytes: Annotated[
        int, _option("CHATROOM_MAX_TEXT_BYTES", "Longest note text in bytes.", LIMITS, min=1)
    ] = DEFAULTS.max_text_bytes,
    max_unacked: Annotated[
        int, _option("CHATROOM_MAX_UNACKED", "Notes a session may be sent beyond its cursor.", LIMITS, min=1)
    ] = DEFAULTS.max_unacked,
    max_sessions_per_member: Annotated[
        int, _option("CHATROOM_MAX_SESSIONS_PER_MEMBER", "Open streams per member.", LIMITS, min=1)
    ] = DEFAULTS.max_sessions_per_member,
    notes_per_second: Annotated[
        float,
        _option("CHATROOM_NOTES_PER_SECOND", "Average notes a member may send a second.", LIMITS, min=0.01),
    ] = DEFAULTS.notes_per_second,
    note_burst: Annotated[
        int, _option("CHATROOM_NOTE_BURST", "Notes a member may send at once.", LIMITS, min=1)
    ] = DEFAULTS.note_burst,
    max_group_members: Annotated[
        int, _option("CHATROOM_MAX_GROUP_MEMBERS", "Members per group.", LIMITS, min=1)
    ] = DEFAULTS.max_group_members,
    max_groups: Annotated[int, _option("CHATROOM_MAX_GROUPS", "Groups per server.", LIMITS, min=1)] = (
        DEFAULTS.max_groups
    ),
    ack_flush_interval: Annotated[
        float,
        _option("CHATROOM_ACK_FLUSH_INTERVAL", "Seconds an ack may wait to be written.", LIMITS, min=0.001),
    ] = DEFAULTS.ack_flush_interval_s,
    tls_cert: Annotated[
        Path | None, _option("CHATROOM_TLS_CERT", "Server certificate chain (PEM).", TLS_PANEL)
    ] = None,
    tls_key: Annotated[
        Path | None, _option("CHATROOM_TLS_KEY", "Server private key (PEM).", TLS_PANEL)
    ] = None,
    tls_client_ca: Annotated[
        Path | None,
        _option("CHATROOM_TLS_CLIENT_CA", "Require client certificates signed by this CA (PEM).", TLS_PANEL),
    ] = None,
) -> None:
    """Start the server: in the foreground, or in the background with --detach."""
    existing = running_server()
    if existing is not None:
        fail(
            f"a server is already running from {state_dir()} (pid {existing.pid},"
            f" {existing.details.get('address')}): stop it with 'chatctl server stop'"
        )
    if (tls_cert is None) != (tls_key is None):
        fail("TLS needs both --tls-cert and --tls-key")
    if tls_client_ca is not None and tls_cert is None:
        fail("--tls-client-ca needs --tls-cert and --tls-key")
    if db is not None:
        from services.storage import check_db

        try:
            check_db(db)
        except ValueError as error:
            fail(str(error))
    home = state_dir()
    home.mkdir(parents=True, exist_ok=True)
    if detach:
        record = start_detached(_forwarded_options(ctx, skip={"detach"}))
        info(f"server started: pid {record.pid}, listening on {record.details['address']}, log {record.log}")
        return
    config = ServerConfig(
        db=db or default_db(home),
        admin_token=os.environ.get("CHATROOM_ADMIN_TOKEN") or ensure_admin_token(home),
        listen=listen,
        tls=ServerTls(tls_cert, tls_key, tls_client_ca) if tls_cert and tls_key else None,
        health_listen=health_listen,
        metrics_listen=metrics_listen,
        shutdown_grace_s=shutdown_grace,
        transport=Transport(max_message_bytes, keepalive, min_client_ping_interval, max_connection_age),
        chatroom=ChatroomSettings(
            max_text_bytes=max_text_bytes,
            max_unacked=max_unacked,
            ack_flush_interval_s=ack_flush_interval,
            max_sessions_per_member=max_sessions_per_member,
            notes_per_second=notes_per_second,
            note_burst=note_burst,
            max_group_members=max_group_members,
            max_groups=max_groups,
        ),
    )
    _run_foreground(config, log_format)


def _forwarded_options(ctx: typer.Context, skip: set[str]) -> list[str]:
    """The options this command was given (or read from the environment), as flags."""
    options = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if not isinstance(param, TyperOption) or param.name in skip or value in (None, ""):
            continue
        if param.is_flag:
            options += [param.opts[0]] if value else []
        else:
            options.append(f"{param.opts[0]}={value}")
    return options


def _run_foreground(config: ServerConfig, log_format: LogFormat) -> None:
    from services import logs
    from services.server import BindError, serve

    logs.configure(log_format)
    path = record_path()

    def on_ready(address: str) -> None:
        log = os.environ.get("CHATROOM_SERVER_LOG", "")
        details = {
            "address": address,
            "db": config.db,
            "tls": config.tls.describe() if config.tls else None,
            "health_address": config.health_listen or None,
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
    ] = DEFAULT_SHUTDOWN_GRACE_S + 5,
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
