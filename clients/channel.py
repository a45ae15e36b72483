"""Channels to a chatroom server: plaintext or TLS, with keepalive.

Keepalive pings let a client notice a server that vanished without closing its
connections (a killed VM, a cut cable) and reconnect elsewhere. They are sent
every 20 s, no more often than the server accepts (10 s), so the server never
answers with "too many pings".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.ping_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
]


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
        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)


def aio_channel(target: str, tls: ClientTls | None) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(target, options=KEEPALIVE_OPTIONS)
    return grpc.aio.secure_channel(target, tls.credentials(), options=KEEPALIVE_OPTIONS)


def blocking_channel(target: str, tls: ClientTls | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(target, options=KEEPALIVE_OPTIONS)
    return grpc.secure_channel(target, tls.credentials(), options=KEEPALIVE_OPTIONS)
