"""Where a cluster keeps its state: `$CHATROOM_HOME/clusters/<name>/`.

It is an ordinary chatroom state directory — admin.token, tokens/, clients/
with each console's log — so that `CHATROOM_HOME=<it> chatctl client logs
alice` (or `eval "$(chatctl cluster env)"`) works as for a single server.
Beside those live the supervisor's own files: its lock and control socket,
the events and merged logs, each server replica's own state directory, the
embedded PostgreSQL's data and the SQLite file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.state_dir import ADMIN_TOKEN_FILE, DATABASE_FILE, default_state_dir


@dataclass(frozen=True, slots=True)
class ClusterHome:
    root: Path

    @classmethod
    def of(cls, name: str) -> ClusterHome:
        base = default_state_dir()
        if base.parent.name == "clusters" and base.name == name:
            return cls(base)  # CHATROOM_HOME is the cluster's own, as `cluster env` sets it
        return cls(base / "clusters" / name)

    @property
    def lock(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def socket(self) -> Path:
        return self.root / "supervisor.sock"

    @property
    def socket_address(self) -> str:
        return f"unix://{self.socket}"

    @property
    def supervisor_log(self) -> Path:
        """The supervisor's own output (a detached one has no terminal)."""
        return self.root / "supervisor.log"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def merged_log(self) -> Path:
        return self.root / "cluster.log"

    @property
    def admin_token(self) -> Path:
        return self.root / ADMIN_TOKEN_FILE

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def sqlite(self) -> Path:
        return self.root / DATABASE_FILE

    def server_home(self, name: str) -> Path:
        """A replica's own state directory (its server.json and log)."""
        return self.root / "servers" / name

    def log(self, name: str, kind: str) -> Path:
        if kind == "client":
            return self.root / "clients" / f"{name}.log"  # where `chatctl client logs` looks
        if kind == "server":
            return self.server_home(name) / "server.log"
        return self.postgres / "postgres.log"
