"""chatctl: run a chatroom server, manage its groups and members, run clients.

Commands are grouped by noun (server, group, client, delivery, token,
cluster) plus a few verbs (send, health, demo). Every option also reads an environment
variable; --json gives output for scripts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from admin_cli import client_cmd, delivery_cmd, group_cmd, server_cmd, token_cmd
from admin_cli.cluster import cli as cluster_cli
from admin_cli.demo import demo
from admin_cli.health_cmd import health
from admin_cli.history_cmd import history
from admin_cli.send_cmd import send
from admin_cli.settings import use_server, use_tls

app = typer.Typer(
    name="chatctl",
    help="Run and operate a chatroom: group chat over gRPC with tracked delivery.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"chatctl (chatroom) {version('chatroom')}")
        raise typer.Exit()


@app.callback()
def connection(
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            "-s",
            help="Address of the chatroom server, for every command (as CHATROOM_SERVER;"
            " a command's own --server wins).",
            show_default=False,
        ),
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(envvar="CHATROOM_TLS_CA", help="Connect with TLS, trusting this CA (PEM)."),
    ] = None,
    tls_client_cert: Annotated[
        Path | None,
        typer.Option(envvar="CHATROOM_TLS_CLIENT_CERT", help="Client certificate for mutual TLS (PEM)."),
    ] = None,
    tls_client_key: Annotated[
        Path | None, typer.Option(envvar="CHATROOM_TLS_CLIENT_KEY", help="Its private key (PEM).")
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print chatctl's version and exit."
        ),
    ] = False,
) -> None:
    """Run and operate a chatroom: group chat over gRPC with tracked delivery."""
    use_server(server)
    use_tls(tls_ca, tls_client_cert, tls_client_key)


app.add_typer(server_cmd.app, name="server")
app.add_typer(group_cmd.app, name="group")
app.add_typer(client_cmd.app, name="client")
app.add_typer(delivery_cmd.app, name="delivery")
app.add_typer(token_cmd.app, name="token")
app.add_typer(cluster_cli.app, name="cluster")
app.command()(send)
app.command()(history)
app.command()(health)
app.command()(demo)
