"""Where chatctl finds things: options shared by commands, the state directory, tokens."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from admin_cli.output import fail
from clients.channel import KEEPALIVE_ENV, unsendable_token  # no gRPC: channel.py imports it where it dials
from services.core.errors import InvalidRequest
from services.core.names import check_name
from services.state_dir import ADMIN_TOKEN_FILE, default_state_dir, read_secret, write_secret

if TYPE_CHECKING:
    from clients.channel import ClientTls

DEFAULT_SERVER = "localhost:50051"
SERVER_ENV = "CHATROOM_SERVER"

Server = Annotated[
    str,
    typer.Option("--server", "-s", envvar=SERVER_ENV, help="Address of the chatroom server."),
]
Keepalive = Annotated[
    float,
    typer.Option(
        "--keepalive",
        envvar=KEEPALIVE_ENV,
        min=0.1,
        help="Seconds between pings on a quiet connection, so idle streams stay up through NATs"
        " and proxies; the server must allow as often (its --min-client-ping-interval).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


@dataclass
class _TlsFiles:
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


_tls_files = _TlsFiles()


def use_tls(ca: Path | None, cert: Path | None, key: Path | None) -> None:
    """Set once from chatctl's global options (or their environment variables)."""
    _tls_files.ca, _tls_files.cert, _tls_files.key = ca, cert, key


def use_server(server: str | None) -> None:
    """chatctl's global --server: given before the command, it is what CHATROOM_SERVER would be.

    Set as the variable, so that every command's --server default (and every
    client process chatctl starts) reads it, and a command's own --server wins."""
    if server:
        os.environ[SERVER_ENV] = server


def client_tls() -> ClientTls | None:
    """TLS for connections to the server, or None for plaintext."""
    from clients.channel import ClientTls

    files = (_tls_files.ca, _tls_files.cert, _tls_files.key)
    if not any(files):
        return None
    try:
        return ClientTls.from_files(*files)
    except (OSError, ValueError) as error:
        fail(f"cannot use the TLS files: {error}")


def tls_flags() -> list[str]:
    """The same TLS settings, as flags for a console client process."""
    flags = {
        "--tls-ca": _tls_files.ca,
        "--tls-client-cert": _tls_files.cert,
        "--tls-client-key": _tls_files.key,
    }
    return [f"{flag}={path}" for flag, path in flags.items() if path is not None]


def state_dir() -> Path:
    return default_state_dir()


def admin_token_source() -> str:
    """Where admin_token() reads the token from, for the hint when it is refused."""
    if os.environ.get("CHATROOM_ADMIN_TOKEN"):
        return "CHATROOM_ADMIN_TOKEN"
    return str(state_dir() / ADMIN_TOKEN_FILE)


def admin_token() -> str:
    """CHATROOM_ADMIN_TOKEN, else the token a local server keeps in the state directory."""
    if token := os.environ.get("CHATROOM_ADMIN_TOKEN"):
        return _checked(token, "CHATROOM_ADMIN_TOKEN")
    path = state_dir() / ADMIN_TOKEN_FILE
    token = _read_token(path)
    if token is None:
        fail(f"no admin token: set CHATROOM_ADMIN_TOKEN or start the server here first ({path} is missing)")
    return token


def member_token_path(member: str) -> Path:
    return state_dir() / "tokens" / f"{member}.token"


def save_member_token(member: str, token: str) -> Path:
    """The server has just issued the token (and forgotten it): say so if it cannot be kept."""
    path = member_token_path(member)
    try:
        write_secret(path, token)
    except OSError as error:
        fail(
            f"{member}'s new token could not be saved to {path} ({error.strerror or error}):"
            f" make the state directory writable, then run 'chatctl token issue {member}'"
        )
    return path


def file_name(kind: str, name: str) -> str:
    """A name that picks a file in the state directory: never a path ('../admin' must not
    read admin.token, nor 'client stop ../server' stop the server)."""
    try:
        return check_name(kind, name)
    except InvalidRequest as error:
        fail(error.message)


def member_token(member: str) -> str:
    path = member_token_path(file_name("member", member))
    token = _read_token(path)
    if token is None:
        fail(f"no token for {member!r} in {path.parent}: run 'chatctl token issue {member}'")
    return token


def _read_token(path: Path) -> str | None:
    try:
        token = read_secret(path)
    except (OSError, UnicodeDecodeError) as error:
        reason = "it is not UTF-8 text" if isinstance(error, UnicodeDecodeError) else error.strerror
        fail(f"cannot read the token file {path}: {reason}")
    return None if token is None else _checked(token, f"the token file {path}")


def _checked(token: str, source: str) -> str:
    """A token as gRPC can send it in a header: one word of printable ASCII."""
    if (problem := unsendable_token(token, source)) is not None:
        fail(problem)
    return token
