"""chatctl: run a chatroom server, manage its groups and members, run clients.

Commands are grouped by noun (server, group, client, delivery, token,
cluster) plus a few verbs (send, health, demo). Every option also reads an environment
variable; --json gives output for scripts.

A command's module loads only when that command runs: chatctl's own help lists
them from COMMANDS, so that `chatctl --help` costs little more than Typer and rich.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_command_from_info, get_group_from_info

if TYPE_CHECKING:
    from typer import _click


@dataclass(frozen=True)
class Entry:
    """A command of chatctl: its name, where it lives, and its help line as its own help begins."""

    name: str
    module: str
    attribute: str
    help: str


COMMANDS = (
    Entry("send", "admin_cli.send_cmd", "send", "Send one note as a member."),
    Entry(
        "history",
        "admin_cli.history_cmd",
        "history",
        "Show the notes of a group just below --before, oldest first.",
    ),
    Entry(
        "health",
        "admin_cli.health_cmd",
        "health",
        "Ask the server's gRPC health service; exit 0 only when it is SERVING.",
    ),
    Entry(
        "demo",
        "admin_cli.demo",
        "demo",
        "Run the three scenarios with real client processes and check every expectation.",
    ),
    Entry("server", "admin_cli.server_cmd", "app", "Run the chatroom server."),
    Entry("group", "admin_cli.group_cmd", "app", "Create, inspect and change groups."),
    Entry("client", "admin_cli.client_cmd", "app", "Run console clients and watch them."),
    Entry("delivery", "admin_cli.delivery_cmd", "app", "Inspect delivery state."),
    Entry("token", "admin_cli.token_cmd", "app", "Issue member tokens, and show the ones kept here."),
    Entry(
        "cluster",
        "admin_cli.cluster.cli",
        "app",
        "Run a whole cluster (storage, server replicas, groups, clients) from a chatroom.toml.",
    ),
)
"""In the order chatctl lists them (Typer lists commands before groups)."""


class LazyCommand(TyperCommand):
    """A command as chatctl's listing shows it; the real one loads when its arguments are parsed."""

    def __init__(self, entry: Entry) -> None:
        super().__init__(entry.name, help=entry.help)
        self.entry = entry

    @cached_property
    def real(self) -> _click.Command:
        """Built as app.add_typer or app.command would have built it at start-up."""
        target = getattr(importlib.import_module(self.entry.module), self.entry.attribute)
        holder = typer.Typer()
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=self.entry.name)
            return get_group_from_info(
                holder.registered_groups[0],
                pretty_exceptions_short=app.pretty_exceptions_short,
                suggest_commands=app.suggest_commands,
                rich_markup_mode=app.rich_markup_mode,
            )
        holder.command()(target)
        return get_command_from_info(
            holder.registered_commands[0],
            pretty_exceptions_short=app.pretty_exceptions_short,
            rich_markup_mode=app.rich_markup_mode,
        )

    def make_context(
        self, info_name: str | None, args: list[str], parent: _click.Context | None = None, **extra: Any
    ) -> _click.Context:
        return self.real.make_context(info_name, args, parent=parent, **extra)


class Chatctl(TyperGroup):
    """chatctl's top level: every command from COMMANDS, each loaded when it runs."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for entry in COMMANDS:
            self.add_command(LazyCommand(entry))

    def make_context(
        self, info_name: str | None, args: list[str], parent: _click.Context | None = None, **extra: Any
    ) -> _click.Context:
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: _click.Context) -> Any:
        with _one_line_usage_errors(), _one_line_os_errors(), _one_line_encoding_errors():
            return super().invoke(ctx)


@contextmanager
def _one_line_os_errors() -> Iterator[None]:
    """A file or directory chatctl cannot use (the state directory is a file, or read-only)."""
    try:
        yield
    except OSError as error:
        if error.filename is None:
            raise  # not about a file: a broken pipe (Typer exits quietly), or a bug to see whole
        from admin_cli.output import fail

        fail(f"cannot use {error.filename}: {error.strerror or error}")


@contextmanager
def _one_line_encoding_errors() -> Iterator[None]:
    """Bytes that are not UTF-8 reach Python as lone surrogates, which no name, note or
    header can hold; a path may (the file system takes them back as they came)."""
    try:
        yield
    except UnicodeEncodeError as error:
        from admin_cli.output import fail

        fail(f"{error.object!r} is not valid UTF-8 (an argument, or a CHATROOM_ variable?)")


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """A mistake in the arguments is one line, as every other mistake is (Typer draws a panel)."""
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    try:
        yield
    except NoArgsIsHelpError:
        raise  # no arguments at all: the help is the answer
    except UsageError as error:
        from admin_cli.output import fail

        hint = "" if error.ctx is None else f" (see '{error.ctx.command_path} --help')"
        fail(f"{error.format_message()}{hint}", error.exit_code)


app = typer.Typer(
    name="chatctl",
    cls=Chatctl,
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
    from admin_cli.settings import use_server, use_tls

    use_server(server)
    use_tls(tls_ca, tls_client_cert, tls_client_key)
