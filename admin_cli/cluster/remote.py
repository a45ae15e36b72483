"""chatctl's side of the control plane: blocking calls to a cluster's supervisor, failures as one line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

from admin_cli.cluster.home import ClusterHome
from admin_cli.output import fail
from chatroom.cluster.v1 import cluster_pb2, cluster_pb2_grpc

CALL_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 2.0


class Supervisor:
    def __init__(self, name: str, home: ClusterHome) -> None:
        self.name = name
        self.home = home
        self._channel = grpc.insecure_channel(home.socket_address)
        self._stub = cluster_pb2_grpc.ClusterServiceStub(self._channel)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *_: object) -> None:
        self._channel.close()

    def probe(self) -> cluster_pb2.GetStatusResponse | None:
        """The status if a supervisor answers on the socket, else None."""
        if not self.home.socket.exists():
            return None
        try:
            status: cluster_pb2.GetStatusResponse = self._stub.GetStatus(
                cluster_pb2.GetStatusRequest(), timeout=PROBE_TIMEOUT_S
            )
        except grpc.RpcError:
            return None
        return status

    def _call(self, method: Callable[..., Any], request: object, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        try:
            return method(request, timeout=timeout_s)
        except grpc.RpcError as error:
            fail(self._explain(error))

    def _explain(self, error: grpc.RpcError) -> str:
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            return f"cluster {self.name} is not up: start it with 'chatctl cluster up'"
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"the supervisor of {self.name} did not answer in time; see {self.home.supervisor_log}"
        return str(error.details() or error.code().name)

    def status(self) -> cluster_pb2.GetStatusResponse:
        response: cluster_pb2.GetStatusResponse = self._call(
            self._stub.GetStatus, cluster_pb2.GetStatusRequest()
        )
        return response

    def scale(self, counts: dict[str, int]) -> list[cluster_pb2.Process]:
        request = cluster_pb2.ScaleRequest(counts=counts)
        response: cluster_pb2.ScaleResponse = self._call(self._stub.Scale, request, timeout_s=120)
        return list(response.processes)

    def restart(self, names: list[str]) -> list[cluster_pb2.Process]:
        request = cluster_pb2.RestartRequest(names=names)
        response: cluster_pb2.RestartResponse = self._call(self._stub.Restart, request, timeout_s=120)
        return list(response.processes)

    def kill_running(self, name: str) -> int:
        """SIGKILL if the process runs now; 0 if it does not (it ended between a look and the kill)."""
        try:
            response: cluster_pb2.KillResponse = self._stub.Kill(
                cluster_pb2.KillRequest(name=name), timeout=CALL_TIMEOUT_S
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return 0
            fail(self._explain(error))
        return int(response.pid)

    def rollout_restart(self) -> Iterator[cluster_pb2.RolloutRestartResponse]:
        try:
            yield from self._stub.RolloutRestart(cluster_pb2.RolloutRestartRequest(), timeout=600)
        except grpc.RpcError as error:
            fail(self._explain(error))

    def stop(self) -> list[str]:
        response: cluster_pb2.StopResponse = self._call(
            self._stub.Stop, cluster_pb2.StopRequest(), timeout_s=300
        )
        return list(response.outcomes)
