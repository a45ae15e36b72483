"""Validation of what callers name and write: groups, members, texts, ids."""

from __future__ import annotations

import re
from collections.abc import Iterable

from services.core.errors import InvalidRequest

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
MAX_CLIENT_MSG_ID_BYTES = 128


def check_name(kind: str, name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidRequest(
            f"invalid {kind} name {name!r}: use 1-63 characters of a-z, 0-9, '_' and '-',"
            " starting with a letter or digit"
        )
    return name


def check_names(kind: str, names: Iterable[str]) -> list[str]:
    """Validates and de-duplicates, keeping the caller's order."""
    checked = [check_name(kind, name) for name in names]
    return list(dict.fromkeys(checked))


def check_text(text: str, max_bytes: int) -> str:
    if not text.strip():
        raise InvalidRequest("text is empty")
    size = len(text.encode())
    if size > max_bytes:
        raise InvalidRequest(f"text is {size} bytes; the limit is {max_bytes}")
    _check_no_nul("text", text)
    return text


def check_client_msg_id(client_msg_id: str) -> str:
    size = len(client_msg_id.encode())
    if size > MAX_CLIENT_MSG_ID_BYTES:
        raise InvalidRequest(f"client_msg_id is {size} bytes; the limit is {MAX_CLIENT_MSG_ID_BYTES}")
    _check_no_nul("client_msg_id", client_msg_id)
    return client_msg_id


def _check_no_nul(field: str, value: str) -> None:
    """A NUL is valid UTF-8 but no text column holds it (PostgreSQL refuses it): refuse it
    on every backend alike, rather than store it on one and fail on the other."""
    if "\0" in value:
        raise InvalidRequest(f"{field} contains a NUL character (U+0000), which cannot be stored")
