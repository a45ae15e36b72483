"""The state directory: the SQLite database, the admin token, pid and log files.

`$CHATROOM_HOME` if set, else `$XDG_STATE_HOME/chatroom`, else
`~/.local/state/chatroom`. Files holding secrets are created with mode 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

from services.core.tokens import new_admin_token

ADMIN_TOKEN_FILE = "admin.token"
DATABASE_FILE = "chatroom.db"


def default_state_dir() -> Path:
    if home := os.environ.get("CHATROOM_HOME"):
        return Path(home)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "chatroom"


def default_db(state_dir: Path) -> str:
    return str(state_dir / DATABASE_FILE)


def write_secret(path: Path, value: str) -> None:
    """Writes a file only its owner can read, replacing any earlier one atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(value + "\n")
    os.replace(temporary, path)


def read_secret(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_admin_token(state_dir: Path) -> str:
    """The admin token kept in the state directory, created on first use."""
    path = state_dir / ADMIN_TOKEN_FILE
    token = read_secret(path)
    if token is None:
        token = new_admin_token()
        write_secret(path, token)
    return token
