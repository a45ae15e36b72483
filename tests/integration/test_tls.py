"""TLS and mutual TLS end to end, with certificates made for the test."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatroom.v1 import admin_pb2, admin_pb2_grpc
from clients import ChatClient, ChatError, ClientTls, Note
from tests.certificates import Pki, make_pki
from tests.e2e.conftest import Chatctl
from tests.support import TIMEOUT_S, ServerProcess, bearer

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl is needed to make certificates"
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_server(tmp_path: Path, pki: Pki, *extra: str) -> ServerProcess:
    args = [f"--tls-cert={pki.server_cert}", f"--tls-key={pki.server_key}", *extra]
    return ServerProcess(tmp_path, extra_args=args).start(listen="localhost:0")


@pytest.fixture
def tls(tmp_path: Path, pki: Pki) -> Iterator[ServerProcess]:
    server = tls_server(tmp_path / "tls", pki, "--health-listen=127.0.0.1:0")
    yield server
    server.stop()


@pytest.fixture
def mutual(tmp_path: Path, pki: Pki) -> Iterator[ServerProcess]:
    server = tls_server(tmp_path / "mutual", pki, f"--tls-client-ca={pki.ca}")
    yield server
    server.stop()


def list_groups(address: str, credentials: grpc.ChannelCredentials | None, token: str) -> list[str]:
    channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    with channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        response = stub.ListGroups(admin_pb2.ListGroupsRequest(), metadata=bearer(token), timeout=5)
        return [group.group for group in response.groups]


def test_the_start_up_line_says_how_connections_are_secured(
    tls: ServerProcess, mutual: ServerProcess
) -> None:
    assert "(TLS)" in tls.log and "(mutual TLS)" in mutual.log
    assert "health only, plaintext, on 127.0.0.1:" in tls.log


def test_a_client_trusting_the_ca_talks_and_a_plaintext_one_cannot(tls: ServerProcess, pki: Pki) -> None:
    trusted = grpc.ssl_channel_credentials(pki.ca.read_bytes())
    assert list_groups(tls.address, trusted, tls.admin_token) == []
    with pytest.raises(grpc.RpcError) as refused:
        list_groups(tls.address, None, tls.admin_token)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_probes_reach_health_in_plaintext_on_its_own_port(tls: ServerProcess) -> None:
    assert tls.watched is not None
    health_address = tls.watched.expect(r"health only, plaintext, on (\S+)")[1]
    with grpc.insecure_channel(health_address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S
        )
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as only_health:
            admin_pb2_grpc.AdminServiceStub(channel).ListGroups(admin_pb2.ListGroupsRequest(), timeout=5)
        assert only_health.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_chat_works_over_tls_with_the_client_library(tls: ServerProcess, pki: Pki) -> None:
    with grpc.secure_channel(tls.address, grpc.ssl_channel_credentials(pki.ca.read_bytes())) as channel:
        tokens = tls.admin(channel).create_group("team", ["alice", "bob"])

    async def scenario() -> str:
        client_tls = ClientTls.from_files(pki.ca)
        async with (
            ChatClient(tls.address, tokens["alice"], tls=client_tls) as alice,
            ChatClient(tls.address, tokens["bob"], tls=client_tls) as bob,
        ):
            await alice.send("team", "over TLS")
            async for note in bob.notes("team"):
                assert isinstance(note, Note)
                return note.text
        raise AssertionError("no note")

    assert asyncio.run(scenario()) == "over TLS"


def test_mutual_tls_admits_a_client_certificate_of_its_ca_only(mutual: ServerProcess, pki: Pki) -> None:
    ca = pki.ca.read_bytes()
    ours = grpc.ssl_channel_credentials(ca, pki.client_key.read_bytes(), pki.client_cert.read_bytes())
    assert list_groups(mutual.address, ours, mutual.admin_token) == []
    strangers = grpc.ssl_channel_credentials(
        ca, pki.stranger_key.read_bytes(), pki.stranger_cert.read_bytes()
    )
    for credentials in (grpc.ssl_channel_credentials(ca), strangers):
        with pytest.raises(grpc.RpcError) as refused:
            list_groups(mutual.address, credentials, mutual.admin_token)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_library_without_a_certificate_is_refused_for_good(mutual: ServerProcess, pki: Pki) -> None:
    async def scenario() -> None:
        async with ChatClient(
            mutual.address, "alice.x", tls=ClientTls.from_files(pki.ca), send_retry_s=1
        ) as alice:
            await alice.send("team", "hello?")

    with pytest.raises(ChatError) as refused:
        asyncio.run(scenario())
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE


def test_chatctl_and_console_clients_use_mutual_tls(mutual: ServerProcess, pki: Pki, tmp_path: Path) -> None:
    cli = Chatctl(mutual.home)
    cli.env.update(
        CHATROOM_SERVER=mutual.address,
        CHATROOM_ADMIN_TOKEN=mutual.admin_token,
        CHATROOM_TLS_CA=str(pki.ca),
        CHATROOM_TLS_CLIENT_CERT=str(pki.client_cert),
        CHATROOM_TLS_CLIENT_KEY=str(pki.client_key),
    )
    try:
        cli.run("group create team --members alice,bob")
        cli.run("client start bob --group team --detach")
        cli.run('send --as alice --group team "mutually authenticated"')
        cli.wait_for_note("bob", "alice", "mutually authenticated")
        health = cli.run("health --json").json()
        assert set(health["services"].values()) == {"SERVING"}
        del cli.env["CHATROOM_TLS_CLIENT_CERT"], cli.env["CHATROOM_TLS_CLIENT_KEY"]
        refused = cli.run("group list", check=False)
        assert refused.code == 1 and refused.stderr.startswith("error: cannot reach the chatroom server")
    finally:
        cli.run("client stop --all", check=False)
