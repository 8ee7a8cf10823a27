"""When to start again a process that ended on its own: the one rule of ``latbench serve``'s
supervisor (its API and worker processes) and of the Celery dispatcher (its export workers).

A process that ran a while is started again at once (after RESTART_DELAY_S): the OOM killer or a
SIGKILL ended one run, not the service. One that keeps dying right after its start (a broker that
refuses it, a setting it cannot use) is started again later each time, 1, 2, 4, 8 s, and after
MAX_QUICK_DEATHS in a row not at all: the caller stops, loudly, instead of starting a Python
process every second for ever. A process that ends with CANNOT_WORK has applied this rule to a
process of its own (the worker to its export workers) and is not started again either."""

from __future__ import annotations

from dataclasses import dataclass

RESTART_DELAY_S = 1.0
QUICK_DEATH_S = 10.0  # a process that ends this soon after its start ...
MAX_QUICK_DEATHS = 5  # ... this many times in a row cannot start
CANNOT_WORK = 3  # the exit status of a process that has given up itself: not started again


@dataclass
class Restarts:
    """How one supervised process has fared."""

    quick_deaths: int = 0

    def ended(self, ran_s: float) -> float | None:
        """Seconds to wait before starting it again, or None: it cannot start."""
        self.quick_deaths = self.quick_deaths + 1 if ran_s < QUICK_DEATH_S else 0
        if self.quick_deaths >= MAX_QUICK_DEATHS:
            return None
        return RESTART_DELAY_S * 2 ** max(0, self.quick_deaths - 1)
