"""Scheduled jobs: small periodic tasks (deliver notifications, purge expired data) run by a thread in
each serving process. Jobs must be safe to run in several processes at once (use row locks)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    every: float  # seconds
    run: Callable[[object, object], object]  # run(db, settings)
    next_at: float = 0.0


JOBS: list[Job] = []


def job(name: str, every: float):
    """Register a function `fn(db, settings)` to run every `every` seconds."""

    def register(fn):
        if all(j.name != name for j in JOBS):
            JOBS.append(Job(name, every, fn))
        return fn

    return register


class Scheduler:
    def __init__(self, db, settings):
        self.db, self.settings = db, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="smartcity-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def run_due(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for j in list(JOBS):
            if now >= j.next_at:
                j.next_at = now + j.every
                try:
                    j.run(self.db, self.settings)
                except Exception:
                    log.exception("job %s failed", j.name)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.run_due()


@job("notifications", every=1.0)
def _deliver(db, settings):
    from smartcity.core.notify import deliver_pending

    return deliver_pending(db, settings)
