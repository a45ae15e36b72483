"""A Store that counts, for the metrics: notes stored and storage failures.

The core knows nothing of Prometheus; what it asks of storage is counted here,
at its edge, by wrapping the store it is given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from services.core.errors import Unavailable
from services.core.model import NewNote
from services.core.store import Appended, AppendResult, Store
from services.metrics import NOTES_SENT, STORAGE_ERRORS


class _Metered:
    def __init__(self, store: Store) -> None:
        self._store = store

    def __repr__(self) -> str:
        return repr(self._store)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute
        return _counting_failures(attribute)

    async def append_notes(self, batch: Sequence[NewNote]) -> list[AppendResult]:
        results: list[AppendResult] = await _counting_failures(self._store.append_notes)(batch)
        NOTES_SENT.inc(sum(isinstance(result, Appended) and result.created for result in results))
        return results


def _counting_failures(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except Unavailable:
            STORAGE_ERRORS.inc()
            raise

    return counted


def metered(store: Store) -> Store:
    return cast(Store, _Metered(store))
