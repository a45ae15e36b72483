"""Channels to a chatroom server: plaintext or TLS, with keepalive.

Keepalive pings let a client notice a server that vanished without closing its
connections (a killed VM, a cut cable) and reconnect elsewhere, and keep idle
streams alive through NATs and proxies that drop silent connections. They are
sent every DEFAULT_KEEPALIVE_S unless told otherwise; the server accepts them
no more often than its --min-client-ping-interval (10 s by default), so a
shorter interval needs a server told to allow it, or it answers "too many pings".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: chatctl --help, and the settings it reads, need no gRPC
    import grpc

DEFAULT_KEEPALIVE_S = 20.0
KEEPALIVE_ENV = "CHATROOM_CLIENT_KEEPALIVE"
"""Not CHATROOM_KEEPALIVE: that one is the server's own ping interval (--keepalive)."""
PING_TIMEOUT_MS = 10_000


def unsendable_token(token: str, source: str) -> str | None:
    """Why a token cannot travel in an authorization header, if it cannot (gRPC refuses
    such a header with a bare INTERNAL "Invalid metadata")."""
    if token.isascii() and token.isprintable() and " " not in token:
        return None
    return f"{source} holds no token: a token is one word of printable ASCII"


def keepalive_options(keepalive_s: float) -> list[tuple[str, int]]:
    if keepalive_s <= 0:
        raise ValueError(f"the keepalive interval must be positive, not {keepalive_s:g} s")
    return [
        ("grpc.keepalive_time_ms", int(keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", PING_TIMEOUT_MS),
        ("grpc.http2.ping_timeout_ms", PING_TIMEOUT_MS),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def is_connection_failure(details: str) -> bool:
    """gRPC's own words for "nothing answers there", as opposed to a server's reply."""
    markers = (
        "failed to connect",
        "connection refused",
        "dns resolution",
        "socket closed",
        "connect failed",
        "connection reset",
    )
    return not details or any(marker in details.lower() for marker in markers)


@dataclass(frozen=True, slots=True)
class ClientTls:
    """PEM material. ca None: the system's roots; cert and key: for mutual TLS."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None

    @classmethod
    def from_files(cls, ca: Path | None, cert: Path | None = None, key: Path | None = None) -> ClientTls:
        if (cert is None) != (key is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")
        return cls(*(path.read_bytes() if path else None for path in (ca, cert, key)))

    def credentials(self) -> grpc.ChannelCredentials:
        import grpc

        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)


def aio_channel(
    target: str, tls: ClientTls | None, keepalive_s: float = DEFAULT_KEEPALIVE_S
) -> grpc.aio.Channel:
    import grpc.aio

    options = keepalive_options(keepalive_s)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, tls.credentials(), options=options)


def blocking_channel(
    target: str, tls: ClientTls | None, keepalive_s: float = DEFAULT_KEEPALIVE_S
) -> grpc.Channel:
    import grpc

    options = keepalive_options(keepalive_s)
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, tls.credentials(), options=options)
