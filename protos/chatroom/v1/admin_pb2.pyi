import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Group(_message.Message):
    __slots__ = ("group", "members", "head_seq", "first_seq")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    group: str
    members: _containers.RepeatedScalarFieldContainer[str]
    head_seq: int
    first_seq: int
    def __init__(self, group: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ..., head_seq: _Optional[int] = ..., first_seq: _Optional[int] = ...) -> None: ...

class MemberCredential(_message.Message):
    __slots__ = ("member", "token")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    member: str
    token: str
    def __init__(self, member: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class CreateGroupRequest(_message.Message):
    __slots__ = ("group", "members")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    group: str
    members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateGroupResponse(_message.Message):
    __slots__ = ("group", "credentials")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    group: Group
    credentials: _containers.RepeatedCompositeFieldContainer[MemberCredential]
    def __init__(self, group: _Optional[_Union[Group, _Mapping]] = ..., credentials: _Optional[_Iterable[_Union[MemberCredential, _Mapping]]] = ...) -> None: ...

class GetGroupRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...

class GetGroupResponse(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: Group
    def __init__(self, group: _Optional[_Union[Group, _Mapping]] = ...) -> None: ...

class ListGroupsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGroupsResponse(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[Group]
    def __init__(self, groups: _Optional[_Iterable[_Union[Group, _Mapping]]] = ...) -> None: ...

class DeleteGroupRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...

class DeleteGroupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AddMembersRequest(_message.Message):
    __slots__ = ("group", "members")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    group: str
    members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ...) -> None: ...

class AddMembersResponse(_message.Message):
    __slots__ = ("group", "credentials")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    group: Group
    credentials: _containers.RepeatedCompositeFieldContainer[MemberCredential]
    def __init__(self, group: _Optional[_Union[Group, _Mapping]] = ..., credentials: _Optional[_Iterable[_Union[MemberCredential, _Mapping]]] = ...) -> None: ...

class RemoveMembersRequest(_message.Message):
    __slots__ = ("group", "members")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    group: str
    members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveMembersResponse(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: Group
    def __init__(self, group: _Optional[_Union[Group, _Mapping]] = ...) -> None: ...

class ListUnreadRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...

class ListUnreadResponse(_message.Message):
    __slots__ = ("group", "head_seq", "members")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    group: str
    head_seq: int
    members: _containers.RepeatedCompositeFieldContainer[MemberDelivery]
    def __init__(self, group: _Optional[str] = ..., head_seq: _Optional[int] = ..., members: _Optional[_Iterable[_Union[MemberDelivery, _Mapping]]] = ...) -> None: ...

class MemberDelivery(_message.Message):
    __slots__ = ("member", "last_acked_seq", "unread_count", "online_sessions", "last_seen", "lost_to_retention")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    LAST_ACKED_SEQ_FIELD_NUMBER: _ClassVar[int]
    UNREAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    ONLINE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LOST_TO_RETENTION_FIELD_NUMBER: _ClassVar[int]
    member: str
    last_acked_seq: int
    unread_count: int
    online_sessions: int
    last_seen: _timestamp_pb2.Timestamp
    lost_to_retention: int
    def __init__(self, member: _Optional[str] = ..., last_acked_seq: _Optional[int] = ..., unread_count: _Optional[int] = ..., online_sessions: _Optional[int] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lost_to_retention: _Optional[int] = ...) -> None: ...

class IssueTokenRequest(_message.Message):
    __slots__ = ("member",)
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    member: str
    def __init__(self, member: _Optional[str] = ...) -> None: ...

class IssueTokenResponse(_message.Message):
    __slots__ = ("member", "token")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    member: str
    token: str
    def __init__(self, member: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...
