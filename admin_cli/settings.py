"""Where chatctl finds things: options shared by commands, the state directory, tokens."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from admin_cli.output import fail
from services.state_dir import ADMIN_TOKEN_FILE, default_state_dir, read_secret, write_secret

DEFAULT_SERVER = "localhost:50051"

Server = Annotated[
    str,
    typer.Option("--server", "-s", envvar="CHATROOM_SERVER", help="Address of the chatroom server."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


def state_dir() -> Path:
    return default_state_dir()


def admin_token() -> str:
    """CHATROOM_ADMIN_TOKEN, else the token a local server keeps in the state directory."""
    if token := os.environ.get("CHATROOM_ADMIN_TOKEN"):
        return token
    path = state_dir() / ADMIN_TOKEN_FILE
    token = read_secret(path)
    if token is None:
        fail(f"no admin token: set CHATROOM_ADMIN_TOKEN or start the server here first ({path} is missing)")
    return token


def member_token_path(member: str) -> Path:
    return state_dir() / "tokens" / f"{member}.token"


def save_member_token(member: str, token: str) -> Path:
    path = member_token_path(member)
    write_secret(path, token)
    return path


def member_token(member: str) -> str:
    path = member_token_path(member)
    token = read_secret(path)
    if token is None:
        fail(f"no token for {member!r} in {path.parent}: run 'chatctl token issue {member}'")
    return token
