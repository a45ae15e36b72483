"""gRPC metadata keys of the chatroom.v1 contract, beside the .proto files they complete."""

SUBSCRIBED = "chatroom-subscribed"
"""Initial metadata of a ChatStream once its Subscribe is accepted (value: the group),
sent before any note: a client knows it is subscribed without waiting for one."""

RETRY_AFTER_MS = "chatroom-retry-after-ms"
"""Trailing metadata of a RESOURCE_EXHAUSTED answer to a rate limit: milliseconds to
wait before the same call can succeed."""
