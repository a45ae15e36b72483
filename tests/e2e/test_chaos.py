"""Chaos, bounded: 3 groups, 50 console client processes, 5 senders, 5,000 notes;
meanwhile the server is killed with SIGKILL twice and random clients ten times.
At the end every reader has been handed exactly the notes of its group — seqs
1..head, none missing, none twice — and its unread count is 0."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

import pytest

from clients import Backoff, ChatClient
from clients.lines import NOTE_LINE
from tests.e2e.conftest import Chatctl
from tests.support import ServerProcess, wait_until

GROUPS = ["g1", "g2", "g3"]
READERS = [f"m{i:02d}" for i in range(50)]
SENDERS = [f"s{i}" for i in range(5)]
NOTES_PER_SENDER = 1000
SERVER_KILLS_AT = (0.25, 0.6)  # fractions of all notes sent
CLIENT_KILLS = 10


def group_of(reader: str) -> str:
    return GROUPS[int(reader[1:]) % len(GROUPS)]


@pytest.mark.slow
def test_nothing_is_lost_or_repeated_through_crashes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = ServerProcess(home).start()
    cli = Chatctl(home)
    cli.env.update(CHATROOM_SERVER=server.address, CHATROOM_ADMIN_TOKEN=server.admin_token)
    try:
        for group in GROUPS:
            readers = [reader for reader in READERS if group_of(reader) == group]
            cli.run(f"group create {group} --members {','.join(readers + SENDERS)}")
        for group in GROUPS:
            names = " ".join(reader for reader in READERS if group_of(reader) == group)
            cli.run(f"client start {names} --group {group} --detach --restart on-failure", timeout_s=120)
        tokens = {s: (home / "tokens" / f"{s}.token").read_text().strip() for s in SENDERS}

        asyncio.run(_send_through_chaos(server, cli, tokens))

        with server.channel() as channel:
            admin = server.admin(channel)
            heads = {group: admin.group(group).head_seq for group in GROUPS}
            assert sum(heads.values()) == len(SENDERS) * NOTES_PER_SENDER
            wait_until(
                lambda: all(
                    delivery.unread_count == 0
                    for group in GROUPS
                    for member, delivery in admin.unread(group).items()
                    if member in READERS  # the senders only send
                ),
                timeout_s=120,
                what="every reader to have read everything",
            )
        logs = {reader: (home / "clients" / f"{reader}.log").read_text() for reader in READERS}
        for reader, log in logs.items():
            assert _logged_seqs(log, group_of(reader)) == list(range(1, heads[group_of(reader)] + 1)), reader
        restarts = sum(log.count("* client exited (killed by SIGKILL)") for log in logs.values())
        assert restarts == CLIENT_KILLS  # the chaos did happen
    finally:
        cli.run("client stop --all", check=False, timeout_s=120)
        server.stop()


async def _send_through_chaos(server: ServerProcess, cli: Chatctl, tokens: dict[str, str]) -> None:
    total = len(SENDERS) * NOTES_PER_SENDER
    sent = 0
    chaos_random = random.Random(7)
    client_kills_at = sorted(chaos_random.uniform(0.05, 0.95) for _ in range(CLIENT_KILLS))
    progress = asyncio.Condition()

    async def sender(name: str) -> None:
        nonlocal sent
        backoff = Backoff(initial_s=0.05, max_s=1.0)
        async with ChatClient(server.address, tokens[name], backoff=backoff, send_retry_s=60) as client:
            for i in range(NOTES_PER_SENDER):
                await client.send(GROUPS[i % len(GROUPS)], f"{name} #{i}")
                async with progress:
                    sent += 1
                    progress.notify_all()

    async def reached(fraction: float) -> None:
        async with progress:
            await progress.wait_for(lambda: sent >= fraction * total)

    async def chaos() -> None:
        events = sorted(
            [(at, "server") for at in SERVER_KILLS_AT] + [(at, "client") for at in client_kills_at]
        )
        for at, kind in events:
            await reached(at)
            if kind == "server":
                await asyncio.to_thread(server.kill)
                await asyncio.to_thread(server.restart)
            else:
                await asyncio.to_thread(_kill_a_client, cli, chaos_random)

    await asyncio.gather(chaos(), *(sender(name) for name in SENDERS))


def _kill_a_client(cli: Chatctl, chaos_random: random.Random) -> None:
    alive = [entry for entry in cli.clients().values() if entry["alive"]]
    victim = chaos_random.choice(alive)
    os.kill(int(victim["pid"]), signal.SIGKILL)


def _logged_seqs(log: str, group: str) -> list[int]:
    matches = [NOTE_LINE.match(line) for line in log.splitlines()]
    return [int(m["seq"]) for m in matches if m and m["group"] == group]
