"""Every kind of mistake in a cluster file is one line naming the file, the key and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from admin_cli.cluster.config import EXAMPLE, ConfigError, load, write_example

GROUP = '[[group]]\nname = "team"\nmembers = ["alice", "bob"]\n'
ALICE = '[[client]]\nmember = "alice"\ngroup = "team"\n'

MISTAKES = [
    ('name = "t"\nfoo = 1\n', "foo: unknown key (known: name, storage, server, group, client)"),
    ("[server]\nreplicas = 1\n", "name: is missing"),
    ('name = "Team"\n', "name: 'Team' is not a name: lowercase letters, digits, _ and -"),
    ('name = "t"\n[server]\nreplicas = "two"\n', "server.replicas: must be a whole number, not 'two'"),
    ('name = "t"\n[server]\nreplicas = true\n', "server.replicas: must be a whole number, not True"),
    ('name = "t"\n[server]\nreplicas = 0\n', "server.replicas: must be at least 1, not 0"),
    ('name = "t"\n[server]\nport = 65535\n', "server.port: replicas would listen beyond port 65535"),
    (
        'name = "t"\n[server]\nreplica = 2\n',
        "server.replica: unknown key (known: replicas, port, options, restart)",
    ),
    (
        'name = "t"\n[server]\noptions = 3\n',
        "server.options: must be a table, such as { max_unacked = 1000 }",
    ),
    (
        'name = "t"\n[server]\noptions = { listen = "127.0.0.1:1" }\n',
        "server.options.listen: is not for a cluster file: the cluster sets it per replica, or not at all",
    ),
    (
        'name = "t"\n[server]\noptions = { max_unackd = 3 }\n',
        "server.options.max_unackd: is not a server option:"
        " see 'chatctl server start --help' (flags, _ for -)",
    ),
    (
        'name = "t"\n[server]\noptions = { max_unacked = "many" }\n',
        "server.options.max_unacked: must be a whole number, not 'many'",
    ),
    (
        'name = "t"\n[server]\nrestart = "sometimes"\n',
        "server.restart: must be one of no, on-failure, always, not 'sometimes'",
    ),
    (
        'name = "t"\n[storage]\nurl = "mysql://db"\n',
        "storage.url: must be a postgresql:// URL, not 'mysql://db'",
    ),
    ('name = "t"\n[storage]\nsize = 1\n', "storage.size: unknown key (known: url, sqlite)"),
    (
        'name = "t"\n[storage]\nurl = "postgresql://db"\nsqlite = true\n',
        "storage.sqlite: give either url or sqlite = true, not both",
    ),
    (
        'name = "t"\n[storage]\nsqlite = true\n',
        "storage.sqlite: serves one replica only; server.replicas is 2",
    ),
    ('name = "t"\ngroup = 3\n', "group: must be an array of tables: write [[group]]"),
    ('name = "t"\n[[group]]\nname = "team"\n', "group[0].members: is missing"),
    (
        'name = "t"\n[[group]]\nname = "team"\nmembers = ["alice", "Bob"]\n',
        "group[0].members[1]: 'Bob' is not a member name",
    ),
    ('name = "t"\n' + GROUP + GROUP, "group[1].name: 'team' is the name of group[0] too"),
    ('name = "t"\n' + ALICE, "client[0].group: no [[group]] is named 'team'"),
    (
        'name = "t"\n' + GROUP + '[[client]]\nmember = "chad"\ngroup = "team"\n',
        "client[0].member: 'chad' is not a member of team",
    ),
    ('name = "t"\n' + GROUP + ALICE + ALICE, "client[1].member: 'alice' has a [[client]] already"),
    (
        'name = "t"\n[[group]]\nname = "team"\nmembers = ["server"]\n'
        '[[client]]\nmember = "server"\ngroup = "team"\n',
        "client[0].member: 'server' names a process of the cluster",
    ),
    ('name = "t"\n' + GROUP + ALICE + "sessions = -1\n", "client[0].sessions: must be at least 0, not -1"),
    ('name = "t"\n' + GROUP + ALICE + "sessions = 65\n", "client[0].sessions: must be at most 64, not 65"),
    ('name = "t"\n[server]\nreplicas = 17\n', "server.replicas: must be at most 16, not 17"),
    (
        'name = "t"\n' + GROUP + ALICE + 'restart = "never"\n',
        "client[0].restart: must be one of no, on-failure, always, not 'never'",
    ),
    (
        'name = "t"\n' + GROUP + ALICE + "session = 2\n",
        "client[0].session: unknown key (known: member, group, sessions, restart)",
    ),
    ("name = \n", "not valid TOML: Invalid value (at line 1, column 8)"),
]


@pytest.mark.parametrize(
    ("text", "problem"), MISTAKES, ids=[problem.split(":")[0] for _, problem in MISTAKES]
)
def test_a_mistake_is_one_line_naming_the_file_and_the_key(tmp_path: Path, text: str, problem: str) -> None:
    file = tmp_path / "chatroom.toml"
    file.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load(file)
    assert str(raised.value) == f"{file}: {problem}"
    assert "\n" not in str(raised.value)


def test_a_file_that_is_not_utf8_or_not_there_is_one_line(tmp_path: Path) -> None:
    file = tmp_path / "chatroom.toml"
    file.write_bytes(b'name = "\xff"\n')
    with pytest.raises(ConfigError, match=rf"^{file}: not valid TOML: 'utf-8' codec can't decode byte 0xff"):
        load(file)
    missing = tmp_path / "none.toml"
    with pytest.raises(ConfigError) as raised:
        load(missing)
    assert str(raised.value) == f"{missing}: no such file; write an example with 'chatctl cluster init'"


def test_the_example_loads_and_is_never_written_over(tmp_path: Path) -> None:
    file = tmp_path / "chatroom.toml"
    write_example(file)
    config = load(file)
    assert (config.name, config.server.replicas, config.server.options) == (
        "team",
        2,
        (("max_unacked", 1000),),
    )
    assert [(c.member, c.group, c.sessions, c.restart) for c in config.clients] == [
        (member, "team", 1, "on-failure") for member in ("alice", "bob", "chad")
    ]
    assert config.storage.embedded
    file.write_text("# mine\n")
    with pytest.raises(ConfigError) as raised:
        write_example(file)
    assert str(raised.value) == f"{file} already exists: edit it, or remove it first"
    assert file.read_text() == "# mine\n" != EXAMPLE
