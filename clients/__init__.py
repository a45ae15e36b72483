"""The chatroom client library and the console client process."""

from clients.backoff import Backoff
from clients.chat_client import ChatClient
from clients.model import ChatError, ConnectionEvent, Note
from clients.sync_client import SyncChatClient

__all__ = ["Backoff", "ChatClient", "ChatError", "ConnectionEvent", "Note", "SyncChatClient"]
