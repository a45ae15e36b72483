"""The chatroom client library and the console client process."""

from clients.backoff import Backoff
from clients.channel import ClientTls
from clients.chat_client import ChatClient
from clients.model import ChatError, ConnectionEvent, Gap, Note, NotePage
from clients.sync_client import SyncChatClient

__all__ = [
    "Backoff",
    "ChatClient",
    "ClientTls",
    "ChatError",
    "ConnectionEvent",
    "Gap",
    "Note",
    "NotePage",
    "SyncChatClient",
]
