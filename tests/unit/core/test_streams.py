"""Streams before they subscribe: counted against the member's limit, given a deadline, ended on shutdown."""

from __future__ import annotations

import asyncio

import pytest

from services.core.errors import InvalidRequest, LimitExceeded, Unavailable
from tests.unit.core.conftest import WAIT_S, members, started


def test_streams_that_never_subscribe_count_against_the_limit() -> None:
    async def scenario() -> None:
        chatroom = await started(max_sessions_per_member=2)
        who = await members(chatroom, "team", "alice")
        first, second = chatroom.admit(who["alice"]), chatroom.admit(who["alice"])
        with pytest.raises(LimitExceeded, match="already has 2 open streams"):
            chatroom.admit(who["alice"])
        chatroom.close_stream(first, None)
        chatroom.close_stream(second, None)
        chatroom.close_stream(chatroom.admit(who["alice"]), None)  # room again
        await chatroom.close()

    asyncio.run(scenario())


def test_a_stream_must_subscribe_within_the_deadline() -> None:
    async def scenario() -> None:
        chatroom = await started(subscribe_timeout_s=0.2)
        who = await members(chatroom, "team", "alice")
        admission = chatroom.admit(who["alice"])
        never = asyncio.get_running_loop().create_future()
        with pytest.raises(InvalidRequest, match=r"no subscribe within 0.2 s"):
            await asyncio.wait_for(chatroom.first_request(admission, never), WAIT_S)
        assert never.cancelled()
        await chatroom.close()

    asyncio.run(scenario())


def test_shutdown_ends_streams_waiting_for_their_subscribe_at_once() -> None:
    async def scenario() -> None:
        chatroom = await started(subscribe_timeout_s=3600)
        who = await members(chatroom, "team", "alice")
        admission = chatroom.admit(who["alice"])
        never = asyncio.get_running_loop().create_future()
        waiting = asyncio.ensure_future(chatroom.first_request(admission, never))
        await asyncio.sleep(0)
        chatroom.end_sessions()
        with pytest.raises(Unavailable, match="shutting down"):
            await asyncio.wait_for(waiting, WAIT_S)
        await chatroom.close()

    asyncio.run(scenario())
