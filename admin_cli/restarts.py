"""When a supervised process that ended is started again: the one restart policy of chatctl.

`client start --restart` and `chatctl cluster` both follow it. A process that
ends is started again according to its policy (no, on-failure, always) after
an exponentially growing delay with jitter, capped, so that a crash loop does
not spin; a run that lasted HEALTHY_RUN_S resets the delay, and after
MAX_FAST_FAILURES short runs in a row the supervisor gives up (`failed`)
instead of retrying for ever something that cannot start.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Literal

from clients.backoff import Backoff

RestartPolicy = Literal["no", "on-failure", "always"]
RESTART_POLICIES: tuple[RestartPolicy, ...] = ("no", "on-failure", "always")
RESTART_BACKOFF = Backoff(initial_s=0.5, max_s=30.0)
HEALTHY_RUN_S = 10.0
"""A process that ran this long resets the restart delay and the count of fast failures."""
MAX_FAST_FAILURES = 5


@dataclass(frozen=True, slots=True)
class Verdict:
    restart_in_s: float | None
    """Seconds until the next start; None: not started again."""
    gave_up: bool = False
    """Too many fast failures in a row: the process is `failed`."""


class Restarts:
    """The restart decisions for one supervised process, across its runs."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.count = 0
        """Times the process was started again."""
        self._delays = RESTART_BACKOFF.delays()
        self._fast_failures = 0
        self._started = time.monotonic()

    def started(self) -> None:
        self._started = time.monotonic()

    def after_exit(self, code: int) -> Verdict:
        """What to do now that a run ended with this exit code (negative: killed by a signal)."""
        if time.monotonic() - self._started >= HEALTHY_RUN_S:
            self._delays.reset()
            self._fast_failures = 0
        failed = code != 0
        if self.policy == "no" or (self.policy == "on-failure" and not failed):
            return Verdict(None)
        self._fast_failures += 1
        if self._fast_failures >= MAX_FAST_FAILURES:
            return Verdict(None, gave_up=True)
        return Verdict(self._delays.next())

    def restarting(self) -> None:
        self.count += 1


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
