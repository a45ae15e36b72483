"""Server configuration: one frozen value built by chatctl from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.core.chatroom import ChatroomSettings

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_SHUTDOWN_GRACE_S = 10.0


@dataclass(frozen=True, slots=True)
class ServerTls:
    """PEM files; with client_ca set, clients must present a certificate it signed."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def describe(self) -> str:
        return "mutual TLS" if self.client_ca else "TLS"


@dataclass(frozen=True, slots=True)
class Transport:
    max_message_bytes: int = 1 << 20
    """Largest request the server accepts."""
    keepalive_s: float = 20.0
    """Idle time before the server pings a client; a silent client is dropped one
    interval later, so a vanished client's sessions end within about twice this."""
    min_client_ping_interval_s: float = 10.0
    """Clients pinging more often than this are sent away (GOAWAY too_many_pings); the
    client library pings every 20 s."""
    max_connection_age_s: float = 1800.0
    """Connections are closed (streams resume elsewhere) after this long, so that
    load spreads again over replicas behind one address; 0 disables."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    db: str
    """A SQLite file path or a postgresql:// URL."""
    admin_token: str
    listen: str = DEFAULT_LISTEN
    """host:port to bind; port 0 picks a free one."""
    tls: ServerTls | None = None
    health_listen: str = ""
    """host:port of a plaintext listener serving only health (for probes that cannot speak TLS)."""
    metrics_listen: str = ""
    """host:port of the Prometheus endpoint; empty: no metrics endpoint."""
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S
    """How long in-flight unary calls may finish after SIGTERM."""
    transport: Transport = field(default_factory=Transport)
    chatroom: ChatroomSettings = field(default_factory=ChatroomSettings)
