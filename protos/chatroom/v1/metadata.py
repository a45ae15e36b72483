"""gRPC metadata keys of the chatroom.v1 contract, beside the .proto files they complete."""

SUBSCRIBED = "chatroom-subscribed"
"""Initial metadata of a ChatStream once its Subscribe is accepted (value: the group),
sent before any note: a client knows it is subscribed without waiting for one."""

MAX_UNACKED = "chatroom-max-unacked"
"""Initial metadata beside SUBSCRIBED: how many notes past its member's cursor the
stream is sent before it waits for an ack. A client that acks sparingly must ack
well within it, or a catch-up pauses for every window."""

RETRY_AFTER_MS = "chatroom-retry-after-ms"
"""Trailing metadata of a RESOURCE_EXHAUSTED answer to a rate limit: milliseconds to
wait before the same call can succeed."""
