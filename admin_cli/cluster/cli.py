"""chatctl cluster …: a whole chatroom cluster on this machine, from one file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from admin_cli.cluster.config import DEFAULT_FILE, ClusterConfig, ConfigError, load, write_example
from admin_cli.output import fail, info

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
DEFAULT_PATH = Path(DEFAULT_FILE)


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
