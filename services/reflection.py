"""Server reflection that carries the .proto comments, so `grpcurl describe` documents the API.

grpcio-reflection answers from the runtime's descriptor pool, and the runtime
keeps no source comments. This servicer answers the same questions, but for
chatroom's own files sends the descriptors that protos/generate.py wrote with
their comments (chatroom/descriptors.binpb); every other file (health,
reflection, the well-known types) comes from the runtime pool as before.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer


def _documented_files() -> dict[str, bytes]:
    data = resources.files("chatroom").joinpath("descriptors.binpb").read_bytes()
    files = [
        file
        for file in descriptor_pb2.FileDescriptorSet.FromString(data).file
        if file.name.startswith("chatroom/")
    ]
    for file in files:
        for message in file.message_type:
            for field in message.field:
                # As the runtime's descriptors have it: grpcurl then names JSON fields as
                # the .proto does (head_seq, not headSeq), which scripts rely on.
                field.ClearField("json_name")
    return {file.name: file.SerializeToString() for file in files}


class DocumentedReflection(ReflectionServicer):  # type: ignore[misc]
    def __init__(self, service_names: tuple[str, ...]) -> None:
        super().__init__(service_names)
        self._documented = _documented_files()

    def _file_by_filename(self, request: Any, filename: str) -> reflection_pb2.ServerReflectionResponse:
        try:
            return self._files_of(self._pool.FindFileByName(filename), request)
        except KeyError:
            return super()._file_by_filename(request, filename)

    def _file_containing_symbol(self, request: Any, symbol: str) -> reflection_pb2.ServerReflectionResponse:
        try:
            return self._files_of(self._pool.FindFileContainingSymbol(symbol), request)
        except KeyError:
            return super()._file_containing_symbol(request, symbol)

    def _files_of(self, file: FileDescriptor, request: Any) -> reflection_pb2.ServerReflectionResponse:
        """The file and everything it imports, each documented where it is chatroom's."""
        found: dict[str, FileDescriptor] = {}
        pending = [file]
        while pending:
            current = pending.pop()
            if current.name not in found:
                found[current.name] = current
                pending.extend(current.dependencies)
        return reflection_pb2.ServerReflectionResponse(
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=[self._serialized(each) for each in found.values()]
            ),
            original_request=request,
        )

    def _serialized(self, file: FileDescriptor) -> bytes:
        documented = self._documented.get(file.name)
        if documented is not None:
            return documented
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        return proto.SerializeToString()
