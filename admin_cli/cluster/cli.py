"""chatctl cluster …: a whole chatroom cluster on this machine, from one file."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from admin_cli.cluster.config import DEFAULT_FILE, ClusterConfig, ConfigError, load, write_example
from admin_cli.cluster.home import ClusterHome
from admin_cli.cluster.logs import matches
from admin_cli.output import fail, info, out, print_json
from admin_cli.settings import Json

if TYPE_CHECKING:  # the control plane's modules load only for the commands that use them
    from admin_cli.cluster.chaos import ChaosResult
    from admin_cli.cluster.remote import Supervisor
    from chatroom.cluster.v1 import cluster_pb2

app = typer.Typer(
    help="Run a whole cluster (storage, server replicas, groups, clients) from a chatroom.toml.",
    no_args_is_help=True,
)

ClusterFile = Annotated[
    Path,
    typer.Option(
        "--file", "-f", envvar="CHATROOM_CLUSTER", help="The cluster file.", show_default=DEFAULT_FILE
    ),
]
FileOnly = Annotated[
    Path,
    typer.Option(
        "--file",
        envvar="CHATROOM_CLUSTER",
        help="The cluster file (-f is --follow here).",
        show_default=DEFAULT_FILE,
    ),
]
"""For logs and events, whose -f is --follow as in docker compose and tail."""
DEFAULT_PATH = Path(DEFAULT_FILE)
UP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
POLL_S = 0.2
WATCH_INTERVAL_S = 1.0


def cluster_config(path: Path) -> ClusterConfig:
    try:
        return load(path)
    except ConfigError as error:
        fail(str(error))


@app.command(epilog="Example: chatctl cluster init && chatctl cluster up")
def init(
    file: Annotated[Path | None, typer.Argument(help="Where to write it.", show_default=DEFAULT_FILE)] = None,
) -> None:
    """Write an example cluster file: 2 replicas, group team of alice, bob and chad, a client each."""
    path = file or Path(os.environ.get("CHATROOM_CLUSTER", DEFAULT_FILE))
    try:
        write_example(path)
    except ConfigError as error:
        fail(str(error))
    info(f"wrote {path}: start it with 'chatctl cluster up -f {path}'")


def _supervisor(config: ClusterConfig) -> Supervisor:
    from admin_cli.cluster.remote import Supervisor

    return Supervisor(config.name, ClusterHome.of(config.name))


def _running(config: ClusterConfig) -> Supervisor:
    """The cluster's supervisor, or one line saying the cluster is not up."""
    supervisor = _supervisor(config)
    if supervisor.probe() is None:
        fail(f"cluster {config.name} is not up: start it with 'chatctl cluster up -f {config.path}'")
    return supervisor


@app.command(epilog="Examples: chatctl cluster up\n\nchatctl cluster up -f chatroom.toml --attach")
def up(
    file: ClusterFile = DEFAULT_PATH,
    attach: Annotated[
        bool,
        typer.Option("--attach", "-a", help="Stay in the foreground with the merged logs; Ctrl-C stops."),
    ] = False,
) -> None:
    """Start the cluster (storage, replicas, groups, clients); returns once every process is running."""
    config = cluster_config(file)
    home = ClusterHome.of(config.name)
    with _supervisor(config) as supervisor:
        running = supervisor.probe()
        if running is not None:
            fail(
                f"cluster {config.name} is already up (supervisor pid {running.supervisor_pid}):"
                " see 'chatctl cluster ps', or stop it with 'chatctl cluster down'"
            )
        if attach:
            from admin_cli.cluster.daemon import run

            raise typer.Exit(run(config.path.resolve(), attach=True))
        _start_detached(config, home, supervisor)


def _start_detached(config: ClusterConfig, home: ClusterHome, supervisor: Supervisor) -> None:
    from admin_cli import processes

    home.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = home.supervisor_log
    offset = log.stat().st_size if log.exists() else 0
    argv = [sys.executable, "-m", "admin_cli.cluster.daemon", str(config.path.resolve())]
    daemon = processes.spawn(argv, log)
    deadline = time.monotonic() + UP_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            fail(_last_error(log, offset) or f"the supervisor exited at start; see {log}")
        status = supervisor.probe()
        if status is not None and _all_running(status, config):
            from admin_cli.cluster.views import status_table

            out.print(status_table(status))
            return
        time.sleep(POLL_S)
    fail(f"cluster {config.name} is not all running after {UP_TIMEOUT_S:.0f} s: see 'chatctl cluster ps'")


def _all_running(status: cluster_pb2.GetStatusResponse, config: ClusterConfig) -> bool:
    """Every process running; one that failed or exited is one line and a non-zero exit."""
    for process in status.processes:
        if process.state in ("failed", "exited"):
            fail(
                f"{process.name} {process.state} ({process.last_exit}):"
                f" see 'chatctl cluster logs --file {config.path} {process.name}'"
            )
    return bool(status.processes) and all(process.state == "running" for process in status.processes)


def _wait_running(config: ClusterConfig, supervisor: Supervisor, names: list[str]) -> None:
    deadline = time.monotonic() + UP_TIMEOUT_S
    while time.monotonic() < deadline:
        status = supervisor.status()
        named = [p for p in status.processes if matches(p.name, names)]
        for process in named:
            if process.state in ("failed", "exited"):
                fail(
                    f"{process.name} {process.state} ({process.last_exit}):"
                    f" see 'chatctl cluster logs {process.name}'"
                )
        if all(process.state == "running" for process in named):
            return
        time.sleep(POLL_S)
    fail(f"not all of {', '.join(names)} are running after {UP_TIMEOUT_S:.0f} s: see 'chatctl cluster ps'")


def _last_error(log: Path, offset: int) -> str | None:
    with open(log, errors="replace") as file:
        file.seek(offset)
        lines = [line.strip() for line in file if line.strip()]
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else (lines[-1] if lines else None)


@app.command(epilog="Examples: chatctl cluster down\n\nchatctl cluster down --volumes")
def down(
    file: ClusterFile = DEFAULT_PATH,
    volumes: Annotated[
        bool, typer.Option("--volumes", "-v", help="Also delete its state: data, tokens, logs.")
    ] = False,
) -> None:
    """Stop the cluster in order: clients, then servers (they drain), then storage."""
    from admin_cli.processes import ProcessId

    config = cluster_config(file)
    home = ClusterHome.of(config.name)
    with _supervisor(config) as supervisor:
        status = supervisor.probe()
        if status is None:
            info(f"cluster {config.name} is not up")
        else:
            for outcome in supervisor.stop():
                info(outcome)
            gone = ProcessId.of(status.supervisor_pid)
            if gone is not None and not gone.wait_gone(STOP_TIMEOUT_S):
                fail(f"the supervisor (pid {status.supervisor_pid}) did not exit; see {home.supervisor_log}")
    if volumes and home.root.exists():
        shutil.rmtree(home.root)
        info(f"removed {home.root}")


@app.command(epilog="Examples: chatctl cluster ps\n\nchatctl cluster ps --json")
def ps(
    file: ClusterFile = DEFAULT_PATH,
    as_json: Json = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh every second until Ctrl-C.")] = False,
) -> None:
    """Every process: state, pid, uptime, restarts — and delivery: health and sessions, cursor and unread."""
    from admin_cli.cluster.views import status_json, status_table

    config = cluster_config(file)
    with _running(config) as supervisor:
        if as_json:
            print_json(status_json(supervisor.status()))
            return
        if not watch:
            out.print(status_table(supervisor.status()))
            return
        from rich.live import Live

        with Live(status_table(supervisor.status()), console=out, auto_refresh=False) as live:
            try:
                while True:
                    time.sleep(WATCH_INTERVAL_S)
                    live.update(status_table(supervisor.status()), refresh=True)
            except KeyboardInterrupt:
                pass


@app.command(epilog="Examples: chatctl cluster logs -f\n\nchatctl cluster logs --since 5m server alice")
def logs(
    names: Annotated[
        list[str] | None, typer.Argument(help="Processes, or all of a name: server, alice.")
    ] = None,
    file: FileOnly = DEFAULT_PATH,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    tail: Annotated[int | None, typer.Option("--tail", "-n", min=0, help="Only the last N lines.")] = None,
    since: Annotated[str | None, typer.Option(help="Only lines of the last 5m, 2h, …")] = None,
) -> None:
    """The logs of every process merged in time order, each line prefixed "server-1 |"."""
    from admin_cli.cluster import logs as merged
    from admin_cli.cluster.supervised import SUPERVISOR
    from services.core.settings import parse_duration

    config = cluster_config(file)
    home = ClusterHome.of(config.name)
    wanted = list(names or [])
    known = ["storage", "server", SUPERVISOR, *(client.member for client in config.clients)]
    for name in wanted:
        if not matches(name, known):
            fail(f"no process named {name!r} in {config.path}: see 'chatctl cluster ps'")
    try:
        since_s = parse_duration(since) if since is not None else None
    except ValueError as error:
        fail(f"--since: {error}")
    lines = merged.read(home.merged_log, wanted, tail, since_s)
    if not lines and not follow and not home.merged_log.exists():
        fail(f"cluster {config.name} has no logs yet: start it with 'chatctl cluster up'")
    width = max([len(line.name) for line in lines] + [len("server-1")])
    merged.print_lines(lines, width)
    if follow:
        home.root.mkdir(parents=True, exist_ok=True)
        home.merged_log.touch()
        with contextlib.suppress(KeyboardInterrupt):
            merged.print_lines(merged.follow(home.merged_log, wanted), width)


def _counts(pairs: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pair in pairs:
        name, separator, count = pair.partition("=")
        if not separator or not count.isdigit():
            fail(f"{pair!r}: write NAME=COUNT, such as server=3 or alice=2")
        counts[name] = int(count)
    return counts


@app.command(epilog="Examples: chatctl cluster scale server=3\n\nchatctl cluster scale alice=2 bob=0")
def scale(
    pairs: Annotated[list[str], typer.Argument(help="NAME=COUNT: server (replicas) or a client's member.")],
    file: ClusterFile = DEFAULT_PATH,
) -> None:
    """Change how many replicas or client sessions run, without touching the rest; 0 stops all of a name."""
    config = cluster_config(file)
    counts = _counts(pairs)
    with _running(config) as supervisor:
        supervisor.scale(counts)
        _wait_running(config, supervisor, [name for name, count in counts.items() if count > 0])
        status = supervisor.status()
    for name, count in counts.items():
        running = [p.name for p in status.processes if matches(p.name, [name])]
        info(f"{name}: {count} ({', '.join(running) or 'none running'})")


@app.command(epilog="Example: chatctl cluster restart server-1 alice")
def restart(
    names: Annotated[list[str], typer.Argument(help="Processes, or all of a name: server, alice.")],
    file: ClusterFile = DEFAULT_PATH,
) -> None:
    """Stop processes (SIGTERM, drain) and start them again; waits until they run."""
    config = cluster_config(file)
    with _running(config) as supervisor:
        restarted = supervisor.restart(names)
        _wait_running(config, supervisor, [process.name for process in restarted])
    info(f"restarted {', '.join(process.name for process in restarted)}")


rollout = typer.Typer(help="Replace the server replicas one at a time.", no_args_is_help=True)
app.add_typer(rollout, name="rollout")


@rollout.command("restart", epilog="Example: chatctl cluster rollout restart")
def rollout_restart(file: ClusterFile = DEFAULT_PATH, as_json: Json = False) -> None:
    """Restart each replica in turn: drain, wait until it is SERVING and every client resubscribed."""
    config = cluster_config(file)
    steps = []
    with _running(config) as supervisor:
        for step in supervisor.rollout_restart():
            entry = {
                "name": step.name,
                "seconds": round(step.seconds, 2),
                "notes_resent": step.notes_resent,
                "resubscribed": list(step.resubscribed),
            }
            steps.append(entry)
            if not as_json:
                clients = ", ".join(step.resubscribed) or "none"
                info(
                    f"{step.name}: replaced in {step.seconds:.1f} s, {step.notes_resent} notes sent again,"
                    f" resubscribed: {clients}"
                )
    if as_json:
        print_json({"cluster": config.name, "steps": steps})


QuietTimeout = Annotated[
    float,
    typer.Option(
        "--timeout", min=0, help="Seconds to wait for quiet (no one sending, nothing unread) before checking."
    ),
]


@app.command("verify", epilog="Examples: chatctl cluster verify\n\nchatctl cluster verify --json")
def verify_command(
    file: ClusterFile = DEFAULT_PATH, as_json: Json = False, timeout: QuietTimeout = 60.0
) -> None:
    """Check every client showed each note of its group once, in order, none missing; exit 0 only if so.

    Waits first until no one sends and every member has nothing unread."""
    from admin_cli.cluster import verify as checking
    from admin_cli.output import note

    config = cluster_config(file)
    with _running(config) as supervisor:
        access, clients = checking.of_cluster(supervisor.status())
    if not checking.wait_for_quiet(access, clients, timeout):
        note(f"not quiet after {timeout:.0f} s (still sending, or unread notes): checking as it is")
    if not checking.print_reports(checking.verify(access, clients), as_json):
        raise typer.Exit(1)


@app.command(
    epilog="Examples: chatctl cluster chaos\n\nchatctl cluster chaos --duration 60 --seed 7 --kill-clients 10"
)
def chaos(
    file: ClusterFile = DEFAULT_PATH,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of load and kills.")] = 30.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the kills' times and victims (printed).")] = None,
    kill_servers: Annotated[int, typer.Option(min=0, help="Replicas to kill with SIGKILL.")] = 2,
    kill_clients: Annotated[int, typer.Option(min=0, help="Clients to kill with SIGKILL.")] = 5,
    senders: Annotated[int, typer.Option(min=1, help="Members sending at once, over the replicas.")] = 3,
    timeout: QuietTimeout = 120.0,
    as_json: Json = False,
) -> None:
    """Send through the cluster while replicas and clients are killed, then verify; exit 0 only if whole.

    A replica is killed only while another is SERVING; the supervisor restarts what was killed."""
    import random

    from admin_cli.cluster import chaos as chaotic

    config = cluster_config(file)
    if kill_servers and config.server.replicas < 2:
        fail(f"--kill-servers needs two replicas or more, and {config.path} has {config.server.replicas}")
    if not config.groups:
        fail(f"{config.path} has no [[group]] to send to")
    chosen = random.SystemRandom().randrange(2**31) if seed is None else seed
    with _running(config) as supervisor:
        if not as_json:
            info(f"chaos on {config.name} for {duration:g} s, seed {chosen}: sending, then killing")
        result = chaotic.run(
            config,
            supervisor,
            duration_s=duration,
            seed=chosen,
            server_kills=kill_servers,
            client_kills=kill_clients,
            senders=senders,
            quiet_timeout_s=timeout,
        )
    if as_json:
        print_json(result.as_json())
    else:
        _print_chaos(result)
    if not result.ok:
        raise typer.Exit(1)


def _print_chaos(result: ChaosResult) -> None:
    from admin_cli.output import err

    for kill in result.kills:
        info(f"{kill.at_s:6.1f} s  killed {kill.name} (pid {kill.pid})")
    summary = result.as_json()
    info(
        f"sent {summary['sent']} notes; killed {summary['server_kills']} replicas and"
        f" {summary['client_kills']} clients; {summary['restarts']} restarts"
    )
    pause = f" ({result.longest_pause})" if result.longest_pause else ""
    info(f"longest pause after a kill: {result.longest_pause_s:.2f} s{pause}")
    info(f"lost {result.lost}, duplicated {result.duplicated}")
    for problem in result.problems():
        err.print(problem, markup=False)
    info(f"whole: every client (seed {result.seed})" if result.ok else f"NOT WHOLE (seed {result.seed})")


@app.command(epilog="Examples: chatctl cluster events -f\n\nchatctl cluster events --json")
def events(
    file: FileOnly = DEFAULT_PATH,
    as_json: Json = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
) -> None:
    """Process events (started, ready, exited, restarting, failed), delivery events (subscribed, caught up).

    --json prints one JSON object a line."""
    from admin_cli.cluster import events as recorded

    config = cluster_config(file)
    path = ClusterHome.of(config.name).events
    for entry in recorded.read(path):
        _print_event(entry, as_json)
    if follow:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        with contextlib.suppress(KeyboardInterrupt):
            for entry in recorded.follow(path):
                _print_event(entry, as_json)


def _print_event(entry: dict[str, Any], as_json: bool) -> None:
    from admin_cli.cluster.logs import sanitize

    if as_json:
        sys.stdout.write(json.dumps(entry) + "\n")
    else:
        clock = str(entry.get("time", ""))[11:19]
        detail = f": {entry['detail']}" if entry.get("detail") else ""
        sys.stdout.write(sanitize(f"{clock} {entry.get('name')} {entry.get('event')}{detail}") + "\n")
    sys.stdout.flush()


@app.command(epilog='Example: eval "$(chatctl cluster env)" && chatctl delivery show team')
def env(file: ClusterFile = DEFAULT_PATH, as_json: Json = False) -> None:
    """CHATROOM_HOME and CHATROOM_SERVER (every replica): other chatctl commands then talk to the cluster."""
    config = cluster_config(file)
    home = ClusterHome.of(config.name)
    with _supervisor(config) as supervisor:
        status = supervisor.probe()
    servers = status.servers if status is not None and status.servers else None
    if servers is None:
        servers = ",".join(config.server.address(i) for i in range(1, config.server.replicas + 1))
    values = {"CHATROOM_HOME": str(home.root), "CHATROOM_SERVER": servers}
    if as_json:
        print_json(values)
        return
    for key, value in values.items():
        sys.stdout.write(f"export {key}={shlex.quote(value)}\n")
