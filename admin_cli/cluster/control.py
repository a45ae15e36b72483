"""The supervisor's control plane: chatroom.cluster.v1.ClusterService over its unix socket.

Every `chatctl cluster` command (and grpcurl, through reflection) drives the
cluster through it, from any terminal. Mistakes are INVALID_ARGUMENT,
NOT_FOUND or FAILED_PRECONDITION with a message that says what to do.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

import grpc

from admin_cli.client_cmd import last_note
from admin_cli.cluster.formation import Formation, Refused
from admin_cli.cluster.kinds import ClientSession, ServerReplica, StorageProcess
from admin_cli.cluster.logs import matches
from admin_cli.cluster.supervised import State, Supervised
from chatroom.cluster.v1 import cluster_pb2, cluster_pb2_grpc

SERVICE_NAME = cluster_pb2.DESCRIPTOR.services_by_name["ClusterService"].full_name


class ClusterServicer(cluster_pb2_grpc.ClusterServiceServicer):  # type: ignore[misc]
    def __init__(self, formation: Formation, stopped: Callable[[], None]) -> None:
        self.formation = formation
        self._stopped = stopped
        self._stopping = asyncio.Lock()

    async def GetStatus(
        self, request: cluster_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.GetStatusResponse:
        formation = self.formation
        home = formation.home
        return cluster_pb2.GetStatusResponse(
            cluster=formation.config.name,
            home=str(home.root),
            servers=",".join(formation.server_addresses()),
            processes=await self._describe(formation.processes),
            supervisor_pid=os.getpid(),
            events_path=str(home.events),
            log_path=str(home.merged_log),
            admin_token_path=str(home.admin_token),
        )

    async def Scale(
        self, request: cluster_pb2.ScaleRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.ScaleResponse:
        try:
            await self.formation.scale(dict(request.counts))
        except Refused as refused:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(refused))
        names = list(request.counts)
        shown = [p for p in self.formation.processes if matches(p.name, names)]
        return cluster_pb2.ScaleResponse(processes=await self._describe(shown))

    async def Restart(
        self, request: cluster_pb2.RestartRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.RestartResponse:
        try:
            restarted = await self.formation.restart(list(request.names))
        except Refused as refused:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(refused))
        return cluster_pb2.RestartResponse(processes=await self._describe(restarted))

    async def Kill(
        self, request: cluster_pb2.KillRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.KillResponse:
        try:
            pid = self.formation.kill(request.name, request.signal)
        except Refused as refused:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(refused))
        return cluster_pb2.KillResponse(pid=pid)

    async def RolloutRestart(
        self, request: cluster_pb2.RolloutRestartRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[cluster_pb2.RolloutRestartResponse]:
        try:
            async for step in self.formation.rollout():
                yield cluster_pb2.RolloutRestartResponse(
                    name=step.name,
                    seconds=step.seconds,
                    notes_resent=step.notes_resent,
                    resubscribed=step.resubscribed,
                )
        except Refused as refused:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(refused))

    async def Stop(
        self, request: cluster_pb2.StopRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.StopResponse:
        async with self._stopping:
            outcomes = await self.formation.down()
        self._stopped()
        return cluster_pb2.StopResponse(outcomes=outcomes)

    async def _describe(self, processes: list[Supervised]) -> list[cluster_pb2.Process]:
        clients = [p for p in processes if isinstance(p, ClientSession)]
        deliveries = await self._deliveries({client.group for client in clients})
        described = []
        for process in processes:
            entry = cluster_pb2.Process(
                name=process.name,
                kind=process.kind.value,
                state=process.state.value,
                pid=process.pid,
                restarts=process.restarts.count,
                uptime_s=round(process.uptime_s, 1),
                log_path=str(process.log),
                last_exit=process.last_exit,
                retry_in_s=round(process.retry_in_s, 1),
            )
            if isinstance(process, ServerReplica):
                entry.address = process.address
                entry.health = process.health
                entry.sessions = sum(
                    c.subscribed_to == process.address and c.state is State.RUNNING
                    for c in self.formation.clients.values()
                )
            elif isinstance(process, StorageProcess):
                entry.address = process.address
            elif isinstance(process, ClientSession):
                entry.member, entry.group = process.member, process.group
                member = deliveries.get((process.group, process.member))
                if member is not None:
                    entry.cursor, entry.unread = member
                shown: str | None = await asyncio.to_thread(last_note, process.log)
                entry.last_note = shown or ""
            described.append(entry)
        return described

    async def _deliveries(self, groups: set[str]) -> dict[tuple[str, str], tuple[int, int]]:
        """(group, member) to (cursor, unread), for the groups a replica can answer for now."""
        found: dict[tuple[str, str], tuple[int, int]] = {}
        for group in groups:
            try:
                delivery = await self.formation.admin.unread(group)
            except Exception:  # noqa: BLE001 (no replica answers: those columns stay empty)
                continue
            for member in delivery.members:
                found[(group, member.member)] = (member.last_acked_seq, member.unread_count)
        return found
