from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("cluster", "home", "servers", "processes", "supervisor_pid", "events_path", "log_path", "admin_token_path")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    HOME_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    SUPERVISOR_PID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_PATH_FIELD_NUMBER: _ClassVar[int]
    LOG_PATH_FIELD_NUMBER: _ClassVar[int]
    ADMIN_TOKEN_PATH_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    home: str
    servers: str
    processes: _containers.RepeatedCompositeFieldContainer[Process]
    supervisor_pid: int
    events_path: str
    log_path: str
    admin_token_path: str
    def __init__(self, cluster: _Optional[str] = ..., home: _Optional[str] = ..., servers: _Optional[str] = ..., processes: _Optional[_Iterable[_Union[Process, _Mapping]]] = ..., supervisor_pid: _Optional[int] = ..., events_path: _Optional[str] = ..., log_path: _Optional[str] = ..., admin_token_path: _Optional[str] = ...) -> None: ...

class Process(_message.Message):
    __slots__ = ("name", "kind", "state", "pid", "restarts", "uptime_s", "address", "sessions", "health", "member", "group", "cursor", "unread", "last_note", "log_path", "last_exit", "retry_in_s")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    UNREAD_FIELD_NUMBER: _ClassVar[int]
    LAST_NOTE_FIELD_NUMBER: _ClassVar[int]
    LOG_PATH_FIELD_NUMBER: _ClassVar[int]
    LAST_EXIT_FIELD_NUMBER: _ClassVar[int]
    RETRY_IN_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    state: str
    pid: int
    restarts: int
    uptime_s: float
    address: str
    sessions: int
    health: str
    member: str
    group: str
    cursor: int
    unread: int
    last_note: str
    log_path: str
    last_exit: str
    retry_in_s: float
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[str] = ..., pid: _Optional[int] = ..., restarts: _Optional[int] = ..., uptime_s: _Optional[float] = ..., address: _Optional[str] = ..., sessions: _Optional[int] = ..., health: _Optional[str] = ..., member: _Optional[str] = ..., group: _Optional[str] = ..., cursor: _Optional[int] = ..., unread: _Optional[int] = ..., last_note: _Optional[str] = ..., log_path: _Optional[str] = ..., last_exit: _Optional[str] = ..., retry_in_s: _Optional[float] = ...) -> None: ...

class ScaleRequest(_message.Message):
    __slots__ = ("counts",)
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.ScalarMap[str, int]
    def __init__(self, counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ScaleResponse(_message.Message):
    __slots__ = ("processes",)
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[Process]
    def __init__(self, processes: _Optional[_Iterable[_Union[Process, _Mapping]]] = ...) -> None: ...

class RestartRequest(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class RestartResponse(_message.Message):
    __slots__ = ("processes",)
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[Process]
    def __init__(self, processes: _Optional[_Iterable[_Union[Process, _Mapping]]] = ...) -> None: ...

class KillRequest(_message.Message):
    __slots__ = ("name", "signal")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    signal: int
    def __init__(self, name: _Optional[str] = ..., signal: _Optional[int] = ...) -> None: ...

class KillResponse(_message.Message):
    __slots__ = ("pid",)
    PID_FIELD_NUMBER: _ClassVar[int]
    pid: int
    def __init__(self, pid: _Optional[int] = ...) -> None: ...

class RolloutRestartRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RolloutRestartResponse(_message.Message):
    __slots__ = ("name", "seconds", "notes_resent", "resubscribed")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    NOTES_RESENT_FIELD_NUMBER: _ClassVar[int]
    RESUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    name: str
    seconds: float
    notes_resent: int
    resubscribed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., seconds: _Optional[float] = ..., notes_resent: _Optional[int] = ..., resubscribed: _Optional[_Iterable[str]] = ...) -> None: ...

class StopRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StopResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, outcomes: _Optional[_Iterable[str]] = ...) -> None: ...
