"""Secrets stay secret: tokens never reach a log, and files holding them are 0600."""

from __future__ import annotations

import grpc
import pytest

from chatroom.v1 import chat_pb2, chat_pb2_grpc
from tests.e2e.conftest import Chatctl
from tests.support import bearer


def test_tokens_never_appear_in_logs_or_output(team: Chatctl) -> None:
    team.run("token issue doug")
    outputs = [team.run("client start alice bob --group team --detach")]
    outputs.append(team.run('send --as alice --group team "hello"'))
    team.wait_for_note("bob", "alice", "hello")
    outputs.append(team.run("group add-members team --members erin"))
    outputs.append(team.run("token issue alice"))  # replaces alice's token; her console is refused
    outputs.append(team.run("delivery show team --json"))
    with (
        grpc.insecure_channel(team.env["CHATROOM_SERVER"]) as channel,
        pytest.raises(grpc.RpcError) as forged,
    ):
        chat_pb2_grpc.ChatServiceStub(channel).SendNote(
            chat_pb2.SendNoteRequest(group="team", text="forged"),
            metadata=bearer("bob.forged-secret"),
            timeout=5,
        )
    assert forged.value.code() == grpc.StatusCode.UNAUTHENTICATED
    team.run("client stop --all")
    team.run("server stop")

    secrets = [(team.home / "admin.token").read_text().strip(), "forged-secret"]
    token_files = sorted((team.home / "tokens").glob("*.token"))
    secrets += [path.read_text().strip() for path in token_files]
    logs = list(team.home.rglob("*.log"))
    assert {path.name for path in logs} >= {"server.log", "alice.log", "bob.log"}
    texts = [path.read_text() for path in logs] + [out.stdout + out.stderr for out in outputs]
    leaks = [secret for secret in secrets for text in texts if secret.split(".")[-1] in text]
    assert leaks == []

    database = [team.home / name for name in ("chatroom.db", "chatroom.db-wal", "chatroom.db-shm")]
    for path in [team.home / "admin.token", *token_files, *(path for path in database if path.exists())]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert [p.name for p in token_files] == [
        "alice.token",
        "bob.token",
        "chad.token",
        "doug.token",
        "erin.token",
    ]
