"""Scheduled jobs: small periodic tasks (deliver notifications, purge expired data) run by a thread in
each serving process. Modules declare theirs in their `core.module.Module`. Jobs must be safe to run in
several processes at once (use row locks)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A periodic task a module declares: `run(db, settings)` every `every` seconds."""

    name: str
    every: float  # seconds
    run: Callable[[Any, Any], object]


class Scheduler:
    """Runs `jobs` (default: the core's and every declared module's) in a thread of its own."""

    def __init__(self, db, settings, jobs: list[Job] | None = None):
        if jobs is None:
            from smartcity.core.module import declared
            from smartcity.core.module import jobs as declared_jobs

            jobs = declared_jobs(declared())
        self.db, self.settings, self.jobs = db, settings, list(jobs)
        self.next_at: dict[str, float] = {j.name: 0.0 for j in self.jobs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="smartcity-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def run_due(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for j in self.jobs:
            if now >= self.next_at[j.name]:
                self.next_at[j.name] = now + j.every
                self.db.tally.add("job_runs", j.name)
                try:
                    j.run(self.db, self.settings)
                except Exception:  # a job's failure is logged and counted; the other jobs go on
                    self.db.tally.add("job_failures", j.name)
                    log.exception("job %s failed", j.name)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.run_due()


def _deliver(db, settings):
    from smartcity.core.notify import deliver_pending

    return deliver_pending(db, settings)


CORE_JOBS = (Job("notifications", 1.0, _deliver),)
