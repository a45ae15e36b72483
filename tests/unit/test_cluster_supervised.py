"""The restart policy (restarts.py) and each supervised process's state machine (supervised.py),
on real child processes: started, ready, killed, backing off, restarted, given up, stopped."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from admin_cli import restarts
from admin_cli.cluster import events
from admin_cli.cluster.events import EventLog
from admin_cli.cluster.logs import MergedLog
from admin_cli.cluster.supervised import Kind, Launch, Outputs, State, Supervised
from admin_cli.restarts import HEALTHY_RUN_S, MAX_FAST_FAILURES, RestartPolicy, Restarts, describe_exit
from clients.backoff import Backoff

TIMEOUT_S = 30.0
RUNS = "print('up', flush=True); import time; time.sleep(120)"
IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('up', flush=True); time.sleep(120)"
)


# -- the policy -----------------------------------------------------------


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(restarts, "time", SimpleNamespace(monotonic=lambda: self.now))


def test_no_never_restarts_and_on_failure_only_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    Clock(monkeypatch)
    assert Restarts("no").after_exit(1).restart_in_s is None
    assert Restarts("no").after_exit(-signal.SIGKILL).restart_in_s is None
    assert Restarts("on-failure").after_exit(0).restart_in_s is None
    assert Restarts("on-failure").after_exit(-signal.SIGKILL).restart_in_s is not None
    assert Restarts("always").after_exit(0).restart_in_s is not None


def test_delays_grow_with_jitter_and_fast_failures_give_up(monkeypatch: pytest.MonkeyPatch) -> None:
    Clock(monkeypatch)
    policy = Restarts("always")
    ceilings = [restarts.RESTART_BACKOFF.initial_s * 2**i for i in range(MAX_FAST_FAILURES - 1)]
    for ceiling in ceilings:
        verdict = policy.after_exit(1)
        assert verdict.restart_in_s is not None and ceiling / 2 <= verdict.restart_in_s <= ceiling
        assert not verdict.gave_up
        policy.restarting()
        policy.started()
    assert policy.after_exit(1) == restarts.Verdict(None, gave_up=True)
    assert policy.count == MAX_FAST_FAILURES - 1


def test_a_healthy_run_resets_the_delay_and_the_count_of_fast_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    policy = Restarts("on-failure")
    for _ in range(MAX_FAST_FAILURES - 1):
        policy.started()
        policy.after_exit(1)
    policy.started()
    clock.now += HEALTHY_RUN_S
    verdict = policy.after_exit(1)
    initial = restarts.RESTART_BACKOFF.initial_s
    assert verdict.restart_in_s is not None and initial / 2 <= verdict.restart_in_s <= initial
    assert not verdict.gave_up


def test_exits_are_described_as_a_person_reads_them() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-200) == "killed by signal 200"


# -- the state machine, on real processes ------------------------------------


@dataclass(frozen=True)
class Recorded(Outputs):
    logs: Path
    """Where the process's own log and the events are."""


class Python(Supervised):
    """`python -c CODE`, ready once it printed "up"."""

    kind = Kind.CLIENT

    def __init__(self, outputs: Recorded, code: str, policy: RestartPolicy, grace_s: float = 15.0) -> None:
        super().__init__("proc", outputs.logs / "proc.log", policy, outputs)
        self.code = code
        self.grace_s = grace_s
        self.events_path = outputs.logs / "events.jsonl"
        self._up = asyncio.Event()

    def launch(self) -> Launch:
        self._up.clear()
        return Launch([sys.executable, "-c", self.code], {}, stop_grace_s=self.grace_s)

    def on_output(self, line: str) -> None:
        if line == "up":
            self._up.set()

    async def become_ready(self) -> None:
        await self._up.wait()

    def events(self) -> list[str]:
        return [entry["event"] for entry in events.read(self.events_path)]


async def until(condition: Callable[[], bool], what: str) -> None:
    async def polled() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(polled(), TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def run(scenario: Callable[..., Any], *args: Any) -> None:
    asyncio.run(scenario(*args))


@pytest.fixture
def outputs(tmp_path: Path) -> Iterator[Recorded]:
    merged = MergedLog(tmp_path / "cluster.log")
    yield Recorded(merged, EventLog(tmp_path / "events.jsonl"), tmp_path)
    merged.close()


@pytest.fixture
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restarts, "RESTART_BACKOFF", Backoff(initial_s=0.05, max_s=0.2))


def test_killed_it_backs_off_and_runs_again_as_a_new_process(outputs: Recorded, quick_restarts: None) -> None:
    async def scenario() -> None:
        process = Python(outputs, RUNS, "on-failure")
        process.start()
        await until(lambda: process.state is State.RUNNING, "running")
        first = process.pid
        assert first and process.uptime_s >= 0
        assert process.kill(signal.SIGKILL) == first
        await until(lambda: process.state is State.RUNNING and process.pid not in (0, first), "a new process")
        assert process.restarts.count == 1
        assert process.last_exit == "killed by SIGKILL"
        assert process.events() == ["started", "ready", "exited", "restarting", "started", "ready"]
        assert await process.stop() == "stopped"
        assert process.state is State.STOPPED and process.pid == 0

    run(scenario)


def test_with_policy_no_a_killed_process_stays_exited(outputs: Recorded) -> None:
    async def scenario() -> None:
        process = Python(outputs, RUNS, "no")
        process.start()
        await until(lambda: process.state is State.RUNNING, "running")
        process.kill(signal.SIGKILL)
        await until(lambda: process.state is State.EXITED, "exited")
        assert process.pid == 0 and process.restarts.count == 0
        assert process.events() == ["started", "ready", "exited"]
        assert process.kill(signal.SIGKILL) == 0  # nothing runs to be signalled
        await process.stop()

    run(scenario)


def test_a_crash_loop_is_given_up_as_failed(outputs: Recorded, quick_restarts: None) -> None:
    async def scenario() -> None:
        process = Python(outputs, "raise SystemExit(3)", "on-failure")
        process.start()
        await until(lambda: process.state is State.FAILED, "failed")
        assert process.last_exit == "exit code 3"
        assert process.events().count("exited") == MAX_FAST_FAILURES
        assert process.events()[-1] == "failed"
        process.start()  # started again by hand, it is supervised afresh
        await until(lambda: process.events().count("exited") > MAX_FAST_FAILURES, "a fresh start")
        await process.stop()

    run(scenario)


def test_stop_during_backoff_starts_nothing_more(outputs: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restarts, "RESTART_BACKOFF", Backoff(initial_s=60, max_s=60))

    async def scenario() -> None:
        process = Python(outputs, RUNS, "always")
        process.start()
        await until(lambda: process.state is State.RUNNING, "running")
        process.kill(signal.SIGKILL)
        await until(lambda: process.state is State.BACKOFF, "backoff")
        assert 0 < process.retry_in_s <= 60
        assert await asyncio.wait_for(process.stop(), TIMEOUT_S) == "not running"
        assert process.state is State.STOPPED
        assert process.events()[-1] == "restarting"

    run(scenario)


def test_a_process_that_ignores_sigterm_is_killed_after_its_grace(outputs: Recorded) -> None:
    async def scenario() -> None:
        process = Python(outputs, IGNORES_TERM, "always", grace_s=0.5)
        process.start()
        await until(lambda: process.state is State.RUNNING, "running")
        assert await process.stop() == "killed (did not stop within 0.5 s)"
        assert process.state is State.STOPPED and process.pid == 0
        assert process.events()[-1] == "exited"  # a stop is not followed by a restart

    run(scenario)
