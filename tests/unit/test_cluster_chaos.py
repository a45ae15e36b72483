"""The plan of chaos from a seed, the choice of a victim and of the senders: pure parts of chaos.py."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from admin_cli.cluster.chaos import FIRST_KILL_AT, LAST_KILL_AT, Kill, Sender, choose, plan_kills, senders_of
from admin_cli.cluster.config import load


@given(
    seed=st.integers(min_value=0, max_value=2**31),
    duration=st.floats(min_value=1, max_value=3600),
    servers=st.integers(min_value=0, max_value=10),
    clients=st.integers(min_value=0, max_value=50),
)
def test_a_plan_has_the_kills_asked_for_in_order_inside_the_window(
    seed: int, duration: float, servers: int, clients: int
) -> None:
    plan = plan_kills(seed, duration, servers, clients)
    assert [kill.kind for kill in plan].count("server") == servers
    assert [kill.kind for kill in plan].count("client") == clients
    assert [kill.at_s for kill in plan] == sorted(kill.at_s for kill in plan)
    assert all(FIRST_KILL_AT * duration <= kill.at_s <= LAST_KILL_AT * duration for kill in plan)
    assert all(0 <= kill.pick < 1 for kill in plan)
    assert plan == plan_kills(seed, duration, servers, clients)  # the seed names the run


def test_server_kills_each_have_a_slot_of_their_own() -> None:
    for seed in range(50):
        at = [kill.at_s for kill in plan_kills(seed, 70, 7, 5) if kill.kind == "server"]
        assert [int((moment - 7) // 7) for moment in at] == list(range(7)), (seed, at)


def test_seeds_differ() -> None:
    plans = {tuple(plan_kills(seed, 30, 2, 5)) for seed in range(20)}
    assert len(plans) == 20


def test_the_victim_is_of_those_killed_least_at_the_kills_fraction() -> None:
    names = ["chad", "alice", "bob"]
    assert choose(Kill(1, "client", 0.0), names, {}) == "alice"
    assert choose(Kill(1, "client", 0.5), names, {}) == "bob"
    assert choose(Kill(1, "client", 0.99), names, {}) == "chad"
    assert choose(Kill(1, "client", 0.0), names, {"alice": 1}) == "bob"
    assert choose(Kill(1, "client", 0.99), names, {"alice": 1, "chad": 1}) == "bob"
    assert choose(Kill(1, "client", 0.99), names, {"alice": 2, "bob": 1, "chad": 1}) == "chad"


def test_senders_take_each_groups_members_in_turn(tmp_path: Path) -> None:
    file = tmp_path / "chatroom.toml"
    file.write_text(
        'name = "two"\n'
        '[[group]]\nname = "team"\nmembers = ["alice", "bob", "chad"]\n'
        '[[group]]\nname = "ops"\nmembers = ["dora"]\n'
    )
    config = load(file)
    assert senders_of(config, 3) == [Sender("alice", "team"), Sender("dora", "ops"), Sender("bob", "team")]
    assert [s.member for s in senders_of(config, 6)] == ["alice", "dora", "bob", "chad", "alice", "dora"]
