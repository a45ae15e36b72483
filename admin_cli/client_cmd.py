"""chatctl client start|list|stop|logs: console clients as real processes."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from admin_cli import processes
from admin_cli.output import duration, fail, info, note, out, print_json, table
from admin_cli.settings import (
    DEFAULT_SERVER,
    Json,
    Keepalive,
    Server,
    client_tls,
    file_name,
    member_token,
    member_token_path,
    state_dir,
    tls_flags,
)
from clients.channel import DEFAULT_KEEPALIVE_S
from clients.display import visible
from clients.lines import ERROR_PREFIX, LOST_PREFIX, NOTE_LINE, SUBSCRIBED_PREFIX, WAITING_PREFIX

app = typer.Typer(help="Run console clients and watch them.", no_args_is_help=True)

SUBSCRIBE_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class Restart(StrEnum):
    no = "no"
    on_failure = "on-failure"


def clients_dir() -> Path:
    return state_dir() / "clients"


def record_path(name: str) -> Path:
    return clients_dir() / f"{file_name('client', name)}.json"


def log_path(name: str) -> Path:
    return clients_dir() / f"{file_name('client', name)}.log"


def client_command(
    name: str, group: str, server: str, log: Path | None = None, keepalive_s: float | None = None
) -> list[str]:
    """The console client process; with a log it resumes after the notes logged there.

    Without keepalive_s it pings as CHATROOM_CLIENT_KEEPALIVE (inherited) or its default says."""
    command = [
        sys.executable,
        "-m",
        "clients",
        name,
        f"--group={group}",
        f"--server={server}",
        f"--token-file={member_token_path(name)}",
        "--plain",
        *tls_flags(),
    ]
    if keepalive_s is not None:
        command.append(f"--keepalive={keepalive_s}")
    return command + [f"--resume-log={log}"] if log else command


@app.command(
    epilog="Examples: chatctl client start alice --group team\n\n"
    "chatctl client start alice bob chad --group team --detach"
)
def start(
    names: Annotated[list[str], typer.Argument(help="Member names; several need --detach.")],
    group: Annotated[str, typer.Option("--group", "-g", help="Group to join.")],
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run each client as a background process.")
    ] = False,
    restart: Annotated[
        Restart, typer.Option(help="Restart a detached client that dies: no or on-failure.")
    ] = Restart.no,
    server: Server = DEFAULT_SERVER,
    keepalive: Keepalive = DEFAULT_KEEPALIVE_S,
) -> None:
    """Start console clients: one interactive in this terminal, or several in the background."""
    if not detach:
        if len(names) > 1:
            fail("several clients run in the background only: add --detach")
        if restart is not Restart.no:
            fail("--restart applies to detached clients: add --detach")
        import asyncio

        from clients.console import ConsoleOptions, run_console

        name = names[0]
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        servers = [address.strip() for address in server.split(",") if address.strip()]
        options = ConsoleOptions(
            name,
            group,
            servers,
            member_token(name),
            interactive,
            client_tls(),
            keepalive_s=keepalive,
            token_source=str(member_token_path(name)),
        )
        raise typer.Exit(asyncio.run(run_console(options)))
    names = list(dict.fromkeys(names))  # `alice alice` is one client
    for name in names:
        member_token(name)  # fail before starting any if a token is missing
        running = processes.ProcessRecord.load(record_path(name))
        if running is not None and running.alive:
            fail(f"{name} is already running (pid {running.pid}): stop it with 'chatctl client stop {name}'")
    started = [_spawn(name, group, server, restart, keepalive) for name in names]
    failures = [failure for spawned in started if (failure := _await_subscription(spawned)) is not None]
    if failures:
        fail("; ".join(failures))


@dataclass
class _Spawned:
    name: str
    process: processes.ProcessRecord
    log_offset: int


def _spawn(name: str, group: str, server: str, restart: Restart, keepalive_s: float) -> _Spawned:
    log = log_path(name)
    offset = log.stat().st_size if log.exists() else 0
    command = client_command(name, group, server, log, keepalive_s)
    details = {
        "group": group,
        "server": server,
        "restart": restart.value,
        "restarts": 0,
        "log_offset": offset,
    }
    if restart is Restart.on_failure:
        template = processes.ProcessRecord(name, 0, 0.0, time.time(), str(log), details)
        template.save(record_path(name))  # the supervisor fills in the pids
        supervisor = [sys.executable, "-m", "admin_cli.supervisor", str(record_path(name)), "--", *command]
        process = processes.spawn(supervisor, log)
        record = processes.ProcessRecord.of(name, process.pid, log, **details)
        record.details["supervisor"] = {"pid": record.pid, "created": record.created}
    else:
        process = processes.spawn(command, log)
        record = processes.ProcessRecord.of(name, process.pid, log, **details)
        record.save(record_path(name))
    return _Spawned(name, record, offset)


def _await_subscription(spawned: _Spawned) -> str | None:
    """Waits until the client says it subscribed; returns why not, if it failed."""
    log = Path(spawned.process.log)
    deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_S
    while time.monotonic() < deadline:
        with open(log, errors="replace") as file:
            file.seek(spawned.log_offset)
            for line in file:
                if line.startswith(SUBSCRIBED_PREFIX):
                    info(f"started {spawned.name} (pid {_current_pid(spawned)}): {line.strip()[2:]}")
                    return None
                for prefix in (ERROR_PREFIX, WAITING_PREFIX):  # refused, or nothing to talk to
                    if line.startswith(prefix):
                        _stop_record(_load(spawned.name) or spawned.process)
                        return f"{spawned.name}: {line.strip().removeprefix(prefix)}"
        if not spawned.process.alive:
            return f"{spawned.name} exited at start; see 'chatctl client logs {spawned.name}'"
        time.sleep(processes.POLL_INTERVAL_S)
    note(f"{spawned.name} has not subscribed yet and keeps trying; see 'chatctl client logs {spawned.name}'")
    return None


def _current_pid(spawned: _Spawned) -> int:
    record = _load(spawned.name)
    return record.pid if record is not None and record.pid else spawned.process.pid


def _load(name: str) -> processes.ProcessRecord | None:
    return processes.ProcessRecord.load(record_path(name))


def _records() -> list[processes.ProcessRecord]:
    found = [processes.ProcessRecord.load(path) for path in sorted(clients_dir().glob("*.json"))]
    return [record for record in found if record is not None]


LOG_TAIL_BYTES = 64 * 1024
CONNECTION_LINES = (SUBSCRIBED_PREFIX, LOST_PREFIX, WAITING_PREFIX)


def _log_tail(log: Path, since: int = 0) -> list[str]:
    """The last lines of a log, after byte offset since (where this run of the client began)."""
    try:
        with open(log, "rb") as file:
            file.seek(max(since, file.seek(0, 2) - LOG_TAIL_BYTES))
            return file.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return []


def last_note(log: Path) -> str | None:
    """The last note line a client logged (reads only the end of the file)."""
    return next((line for line in reversed(_log_tail(log)) if NOTE_LINE.match(line)), None)


def connected(log: Path, since: int) -> bool:
    """Whether the client's last word on its connection, in this run, is that it subscribed."""
    said = (line for line in reversed(_log_tail(log, since)) if line.startswith(CONNECTION_LINES))
    return next(said, "").startswith(SUBSCRIBED_PREFIX)


def describe(record: processes.ProcessRecord) -> dict[str, Any]:
    alive = record.alive
    return {
        "name": record.name,
        "group": record.details.get("group"),
        "pid": record.pid,
        "alive": alive,
        "connected": alive and connected(Path(record.log), record.details.get("log_offset", 0)),
        "uptime_s": round(time.time() - record.started_at, 1) if alive else None,
        "server": record.details.get("server"),
        "restart": record.details.get("restart", "no"),
        "restarts": record.details.get("restarts", 0),
        "last_note": last_note(Path(record.log)),
        "log": record.log,
    }


@app.command("list", epilog="Example: chatctl client list --json")
def list_clients(as_json: Json = False) -> None:
    """Show each client process: group, pid, connected, waiting or dead, uptime, last note received."""
    entries = [describe(record) for record in _records()]
    if as_json:
        print_json(entries)
        return
    if not entries:
        info("no clients: start some with 'chatctl client start NAME --group GROUP --detach'")
        return
    rows = [
        (
            e["name"],
            e["group"],
            e["pid"],
            "connected" if e["connected"] else "waiting" if e["alive"] else "dead",
            "-" if e["uptime_s"] is None else duration(e["uptime_s"]),
            e["restarts"],
            e["last_note"] or "-",
        )
        for e in entries
    ]
    columns = ("NAME", "GROUP", "PID", "STATE", "UPTIME", "RESTARTS", "LAST NOTE")
    out.print(table(None, columns, rows))


def _stop_record(record: processes.ProcessRecord) -> str:
    supervisor = record.details.get("supervisor")
    if supervisor:
        outcome = processes.ProcessId(supervisor["pid"], supervisor["created"]).stop(STOP_TIMEOUT_S)
        record.process.wait_gone(STOP_TIMEOUT_S)
    else:
        outcome = record.process.stop(STOP_TIMEOUT_S)
    record_path(record.name).unlink(missing_ok=True)
    return outcome


@app.command(epilog="Examples: chatctl client stop alice\n\nchatctl client stop --all")
def stop(
    names: Annotated[list[str] | None, typer.Argument(help="Clients to stop.")] = None,
    all_clients: Annotated[bool, typer.Option("--all", help="Stop every client.")] = False,
) -> None:
    """Stop client processes cleanly (SIGTERM, then wait)."""
    if all_clients == bool(names):
        fail("name the clients to stop, or pass --all")
    records = _records() if all_clients else []
    for name in names or ():
        record = _load(name)
        if record is None:
            fail(f"no client named {name!r}: see 'chatctl client list'")
        records.append(record)
    for record in records:
        info(f"{record.name}: {_stop_record(record)}")


@app.command(epilog="Example: chatctl client logs bob -f")
def logs(
    name: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
) -> None:
    """Print a client's log: the notes it received and its connection events."""
    path = log_path(name)
    if not path.exists():
        fail(f"no log for {name!r}: see 'chatctl client list'")
    with open(path, errors="replace") as file:
        _print_log_lines(file)
        if not follow:
            return
        try:
            while True:
                if _print_log_lines(file):
                    continue
                record = _load(name)
                if record is None or not record.alive:
                    return
                time.sleep(processes.POLL_INTERVAL_S * 4)
        except KeyboardInterrupt:
            return


def _print_log_lines(file: TextIO) -> bool:
    """Prints the complete lines written since the last call, rendered visibly; says if any were.

    The console renders what it logs, but a log may hold anything a process
    wrote to it (gRPC core, an older console): nothing in it reaches the
    terminal raw."""
    printed = False
    while True:
        start = file.tell()
        line = file.readline()
        if not line.endswith("\n"):
            file.seek(start)  # a line still being written: print it once it is whole
            break
        sys.stdout.write(visible(line[:-1]) + "\n")
        printed = True
    sys.stdout.flush()
    return printed
