"""Who is calling: member tokens checked against stored hashes, cached while that is safe.

Every call authenticates, so the stored hash of each member is cached. A cache
must never outlive a replacement: a local IssueToken sets the new hash at once;
another replica's replacement arrives as an event and drops the entry; while
the replica cannot hear those events (its listening connection is down) the
cache is not used at all, and it is emptied when listening starts again. A
lookup that raced with a replacement reads again, so that it never caches, nor
answers with, the hash it replaced. Writes and subscriptions check the token
once more in storage, in their own transaction, so even a stale answer here
cannot store a note or open a stream with a replaced token.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.core import tokens
from services.core.errors import NotAllowed, NotAuthenticated
from services.core.store import Store


@dataclass(frozen=True, slots=True)
class Caller:
    member: str
    token_hash: bytes


class Identities:
    def __init__(self, store: Store, admin_token: str) -> None:
        self._store = store
        self._admin_token_hash = tokens.hash_token(admin_token)
        self._hashes: dict[str, bytes] = {}
        self._changes: dict[str, int] = {}
        """Replacements seen per member: a lookup spanning one is read again."""
        self._epoch = 0
        """Bumped whenever the whole cache is dropped: a lookup spanning that is not cached."""
        self.cache_trusted = True

    async def authenticate(self, token: str | None) -> Caller:
        member = tokens.claimed_member(token) if token else None
        if token is None or member is None:
            raise NotAuthenticated("missing or malformed token: send 'authorization: Bearer <token>'")
        presented = tokens.hash_token(token)
        stored = self._hashes.get(member) if self.cache_trusted else None
        if stored is None or not tokens.same_hash(presented, stored):
            stored = await self._load(member)  # a cache can be behind; storage is not
            if stored is None or not tokens.same_hash(presented, stored):
                raise NotAuthenticated("invalid or replaced token: ask the operator for a new one")
        return Caller(member, stored)

    async def authenticate_admin(self, token: str | None) -> None:
        if token is not None and tokens.matches(token, self._admin_token_hash):
            return
        try:
            await self.authenticate(token)
        except NotAuthenticated:
            raise NotAuthenticated("missing or invalid admin token") from None
        raise NotAllowed("this call needs the admin token, not a member token")

    async def _load(self, member: str) -> bytes | None:
        while True:
            changes, epoch = self._changes.get(member, 0), self._epoch
            stored = await self._store.token_hash(member)
            if self._changes.get(member, 0) == changes:
                if stored is not None and self.cache_trusted and self._epoch == epoch:
                    self._hashes[member] = stored
                return stored

    def replaced(self, member: str, token_hash: bytes | None) -> None:
        """A new token for member (None: known only to storage, read it on next use)."""
        self._changes[member] = self._changes.get(member, 0) + 1
        if token_hash is None or not self.cache_trusted:
            self._hashes.pop(member, None)
        else:
            self._hashes[member] = token_hash

    def distrust_cache(self) -> None:
        """Replacements elsewhere may go unheard: read storage on every call until trusted again."""
        self.cache_trusted = False
        self._forget()

    def trust_cache(self) -> None:
        """Replacements are heard again; what was missed meanwhile is in storage, so start empty."""
        self._forget()
        self.cache_trusted = True

    def _forget(self) -> None:
        self._epoch += 1
        self._hashes.clear()
