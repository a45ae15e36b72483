"""Server configuration: one frozen value built by chatctl from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.core.chatroom import ChatroomSettings

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_SHUTDOWN_GRACE_S = 10.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    db: str
    """A SQLite file path or a postgresql:// URL."""
    admin_token: str
    listen: str = DEFAULT_LISTEN
    """host:port to bind; port 0 picks a free one."""
    metrics_listen: str = ""
    """host:port of the Prometheus endpoint; empty: no metrics endpoint."""
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S
    """How long in-flight unary calls may finish after SIGTERM."""
    chatroom: ChatroomSettings = field(default_factory=ChatroomSettings)
