"""The chatroom client library and the console client process.

The names below load on first use, so that a program reading only the
console's output lines (clients.lines) does not load gRPC, and `python -m
clients` can quiet gRPC core's logging before gRPC is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clients.backoff import Backoff
    from clients.channel import ClientTls
    from clients.chat_client import ChatClient
    from clients.model import ChatError, ConnectionEvent, Gap, Note, NotePage
    from clients.sync_client import SyncChatClient

_MODULES = {
    "Backoff": "clients.backoff",
    "ClientTls": "clients.channel",
    "ChatClient": "clients.chat_client",
    "ChatError": "clients.model",
    "ConnectionEvent": "clients.model",
    "Gap": "clients.model",
    "Note": "clients.model",
    "NotePage": "clients.model",
    "SyncChatClient": "clients.sync_client",
}
__all__ = [
    "Backoff",
    "ChatClient",
    "ChatError",
    "ClientTls",
    "ConnectionEvent",
    "Gap",
    "Note",
    "NotePage",
    "SyncChatClient",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module 'clients' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULES[name]), name)
