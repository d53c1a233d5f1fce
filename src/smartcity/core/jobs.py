"""Scheduled jobs: small periodic tasks (deliver notifications, purge expired data) run by a thread in
each serving process. Modules declare theirs in their `core.module.Module`. Jobs must be safe to run in
several processes at once (use row locks).

Background work: what a request starts and answers before it ends (a file's load, an analysis run) runs in
a thread of its own through `in_background`, and the serving process waits for it (`wait_for_background`)
before it lets go of its store: a stop mid-load would leave the load's row running for ever, and a thread
still writing after the store is gone fails with a traceback nobody reads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

log = logging.getLogger(__name__)

# The name of the scheduler's thread: diagnostics (and tests) tell the jobs' statements from a request's by it.
JOB_THREAD = "smartcity-jobs"


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
        self._thread = threading.Thread(target=self._loop, name=JOB_THREAD, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the job running now (if any) has ended: it may be writing to the store."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the scheduler's job still runs after %.0f s; stopping without it", timeout)

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


BACKGROUND_GRACE = 60.0  # seconds a stopping process gives the background work still running
_background: WeakKeyDictionary[Any, set[threading.Thread]] = WeakKeyDictionary()
_background_lock = threading.Lock()


def in_background(db, name: str, work: Callable[..., object], *args: Any) -> threading.Thread:
    """Run `work(*args)` in a thread named `name` that the process waits for before it stops using `db`.
    `work` ends in a state of its own (a load's row, a run's status): its exceptions are its to record."""

    def run() -> None:
        try:
            work(*args)
        finally:
            with _background_lock:
                _background.get(db, set()).discard(thread)

    thread = threading.Thread(target=run, name=name, daemon=True)
    with _background_lock:
        _background.setdefault(db, set()).add(thread)
    thread.start()
    return thread


def wait_for_background(db, timeout: float = BACKGROUND_GRACE) -> list[str]:
    """Wait up to `timeout` seconds for the background work started on `db` to end; the names of what still
    runs then (logged: that work is cut off when the process exits)."""
    deadline = time.monotonic() + timeout
    while True:
        with _background_lock:
            running = [t for t in _background.get(db, ()) if t.is_alive()]
        if not running:
            return []
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            with _background_lock:
                left = sorted(t.name for t in _background.get(db, ()) if t.is_alive())
            if left:
                log.warning("background work still running after %.0f s: %s", timeout, ", ".join(left))
            return left


def _deliver(db, settings):
    from smartcity.core.notify import deliver_pending

    return deliver_pending(db, settings)


CORE_JOBS = (Job("notifications", 1.0, _deliver),)
