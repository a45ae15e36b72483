"""Domain errors of the delivery core, one class per kind of failure.

The transport maps each kind to one gRPC status code (services/status.py); the
core itself knows nothing of gRPC::

    ChatroomError
    ├── InvalidRequest        the request itself is malformed
    ├── NotAuthenticated      no identity, or a bad or replaced token
    ├── NotAllowed            identity known, access refused
    │   └── NotAMember        chat calls: no such group or not a member of it
    ├── GroupNotFound         admin calls on a group that does not exist
    ├── GroupExists
    ├── LimitExceeded         a configured limit was hit
    └── Unavailable           shutting down or storage down: retry later
"""

from __future__ import annotations


class ChatroomError(Exception):
    """Base of every error the core reports to a caller."""

    @property
    def message(self) -> str:
        return str(self)


class InvalidRequest(ChatroomError):
    pass


class NotAuthenticated(ChatroomError):
    pass


class NotAllowed(ChatroomError):
    pass


class NotAMember(NotAllowed):
    """Raised alike for an unknown group and a group the caller is not in."""

    def __init__(self, group: str) -> None:
        super().__init__(f"group {group!r} does not exist or you are not a member of it")


class GroupNotFound(ChatroomError):
    def __init__(self, group: str) -> None:
        super().__init__(f"group {group!r} does not exist")


class GroupExists(ChatroomError):
    def __init__(self, group: str) -> None:
        super().__init__(f"group {group!r} already exists")


class LimitExceeded(ChatroomError):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        """When the same call can succeed again, for limits that pass with time (rates)."""


class Unavailable(ChatroomError):
    pass
