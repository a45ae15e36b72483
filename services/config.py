"""Server configuration: every option declared once, with its unit, default and limit.

`ServerConfig` and `Transport` declare the server's own options as the core's
`ChatroomSettings` declares the delivery ones (see services/core/settings.py):
a field made with `setting()` is an operator's option, and chatctl derives its
flags and environment variables from these declarations (`server_options()`):
field `keepalive_s` is `--keepalive` and CHATROOM_KEEPALIVE. Values are
checked here, whoever builds them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from services.core.settings import ChatroomSettings, check_settings, setting

LogFormat = Literal["plain", "json"]

NETWORK, TLS_PANEL = "Network", "TLS (plaintext unless a certificate is given)"
DEFAULT_LISTEN = "127.0.0.1:50051"


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
    max_message_bytes: int = setting(1 << 20, "Largest request accepted, in bytes.", min=1024, panel=NETWORK)
    keepalive_s: float = setting(
        20.0,
        "Seconds of silence before the server pings a client; a client that does not answer"
        " is dropped one interval later.",
        min=1,
        panel=NETWORK,
    )
    min_client_ping_interval_s: float = setting(
        10.0,
        "Seconds a client must leave between keepalive pings (the client library pings every 20 s"
        " unless its --keepalive / CHATROOM_CLIENT_KEEPALIVE says otherwise).",
        min=0.1,
        panel=NETWORK,
    )
    max_connection_age_s: float = setting(
        1800.0,
        "Seconds before a connection is recycled (its streams resume, spreading load over"
        " replicas behind one address); 0: never.",
        min=0,
        panel=NETWORK,
    )

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    admin_token: str
    db: str = setting("", "A SQLite file or a postgresql:// URL. Default: SQLite in the state directory.")
    listen: str = setting(DEFAULT_LISTEN, "host:port to listen on; port 0 picks a free one.", panel=NETWORK)
    health_listen: str = setting(
        "", "host:port serving only health, in plaintext (for probes); empty: off.", panel=NETWORK
    )
    metrics_listen: str = setting("", "host:port for Prometheus /metrics; empty: off.", panel=NETWORK)
    shutdown_grace_s: float = setting(
        10.0, "Seconds unary calls in flight get to finish on shutdown.", min=0, panel=NETWORK
    )
    log_format: LogFormat = setting("plain", "plain or json.")
    tls_cert: Path | None = setting(None, "Server certificate chain (PEM).", panel=TLS_PANEL)
    tls_key: Path | None = setting(None, "Server private key (PEM).", panel=TLS_PANEL)
    tls_client_ca: Path | None = setting(
        None, "Require client certificates signed by this CA (PEM): mutual TLS.", panel=TLS_PANEL
    )
    transport: Transport = field(default_factory=Transport)
    chatroom: ChatroomSettings = field(default_factory=ChatroomSettings)

    def __post_init__(self) -> None:
        check_settings(self)
        for name in ("listen", "health_listen", "metrics_listen"):
            address = getattr(self, name)
            if (address or name == "listen") and not _is_address(address):
                flag = "--" + name.replace("_", "-")
                raise ValueError(
                    f"{flag} {address!r}: give host:port with a port of 0-65535, such as 127.0.0.1:50051"
                )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both --tls-cert and --tls-key")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")

    @property
    def tls(self) -> ServerTls | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        return ServerTls(self.tls_cert, self.tls_key, self.tls_client_ca)


def _is_address(address: str) -> bool:
    """host:port, or a unix: socket path as gRPC takes it."""
    if address.startswith("unix:"):
        return True
    host, _, port = address.rpartition(":")
    return bool(host) and port.isascii() and port.isdigit() and int(port) <= 65535


@dataclass(frozen=True, slots=True)
class Option:
    """One operator's option, as chatctl and the cluster file know it."""

    name: str
    """The field's name without its unit: max_unacked, keepalive."""
    field: dataclasses.Field[Any]
    owner: type

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def envvar(self) -> str:
        return "CHATROOM_" + self.name.upper()

    @property
    def help(self) -> str:
        return str(self.field.metadata["help"])


SECTIONS: tuple[type, ...] = (ServerConfig, Transport, ChatroomSettings)


def server_options() -> list[Option]:
    """Every option of `chatctl server start`, in the order of their declarations."""
    return [
        Option(each.name.removesuffix("_s"), each, section)
        for section in SECTIONS
        for each in dataclasses.fields(section)
        if "help" in each.metadata
    ]


def config_from_options(admin_token: str, values: dict[str, Any]) -> ServerConfig:
    """A ServerConfig from option values by name (as server_options() names them); unnamed: default."""
    sections: dict[type, dict[str, Any]] = {section: {} for section in SECTIONS}
    for option in server_options():
        if option.name in values:
            sections[option.owner][option.field.name] = values[option.name]
    return ServerConfig(
        admin_token=admin_token,
        transport=Transport(**sections[Transport]),
        chatroom=ChatroomSettings(**sections[ChatroomSettings]),
        **sections[ServerConfig],
    )
