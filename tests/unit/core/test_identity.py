"""Tokens: a replaced token never opens, keeps or continues anything, even in a race."""

from __future__ import annotations

import asyncio

import pytest

from services.core.errors import NotAuthenticated
from services.core.tokens import hash_token
from services.storage.memory import MemoryStore
from tests.unit.core.conftest import WAIT_S, members, started, subscribe, take


def test_a_replaced_token_no_longer_authenticates_and_its_streams_end() -> None:
    async def scenario() -> None:
        chatroom = await started()
        (old,) = (await chatroom.create_group("team", ["alice"])).credentials
        session = await subscribe(chatroom, await chatroom.authenticate(old.token), "team")
        new = await chatroom.issue_token("alice")
        with pytest.raises(NotAuthenticated):
            await chatroom.authenticate(old.token)
        with pytest.raises(NotAuthenticated, match="replaced"):
            await take(session.items(), 1)
        assert (await chatroom.authenticate(new.token)).member == "alice"
        await chatroom.close()

    asyncio.run(scenario())


def test_a_stream_that_authenticated_before_a_new_token_cannot_subscribe_after_it() -> None:
    async def scenario() -> None:
        chatroom = await started()
        (old,) = (await chatroom.create_group("team", ["alice"])).credentials
        admission = chatroom.admit(await chatroom.authenticate(old.token))  # the stream is open...
        await chatroom.issue_token("alice")  # ...its token replaced before it subscribes
        with pytest.raises(NotAuthenticated, match="replaced"):
            await chatroom.open_session(admission, "team")
        await chatroom.close()

    asyncio.run(scenario())


def test_a_send_authenticated_before_a_new_token_is_not_stored_after_it() -> None:
    async def scenario() -> None:
        chatroom = await started()
        who = await members(chatroom, "team", "alice")
        await chatroom.issue_token("alice")
        with pytest.raises(NotAuthenticated, match="replaced"):
            await chatroom.send_note(who["alice"], "team", "with yesterday's token", "")
        assert (await chatroom.get_group("team")).head_seq == 0
        await chatroom.close()

    asyncio.run(scenario())


class ReadInFlight(MemoryStore):
    """A token lookup that has read the stored hash and not yet answered, when armed."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.read = asyncio.Event()
        self.resume = asyncio.Event()

    async def token_hash(self, member: str) -> bytes | None:
        value = await super().token_hash(member)
        if self.armed:
            self.armed = False
            self.read.set()
            await self.resume.wait()
        return value


def test_a_lookup_racing_with_a_new_token_never_keeps_the_old_one() -> None:
    async def scenario() -> None:
        store = ReadInFlight()
        chatroom = await started(store)
        (old,) = (await chatroom.create_group("team", ["alice"])).credentials
        store.armed = True
        racing = asyncio.ensure_future(chatroom.authenticate(old.token))  # a cache miss: it reads
        await asyncio.wait_for(store.read.wait(), WAIT_S)  # it has read the old hash...
        new = await chatroom.issue_token("alice")  # ...when the token is replaced
        store.resume.set()
        with pytest.raises(NotAuthenticated):
            await racing  # it read again after the replacement
        with pytest.raises(NotAuthenticated):
            await chatroom.authenticate(old.token)
        assert (await chatroom.authenticate(new.token)).token_hash == hash_token(new.token)
        await chatroom.close()

    asyncio.run(scenario())
