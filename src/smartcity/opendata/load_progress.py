"""How far each load of a file is, kept in the store so that every serving process (and the CLI) sees it.

A load is a row (`models.Load`) written by the loading thread in short transactions of its own, separate from
the publication's: read (the file's size), typed (its rows and defects), storing (rows stored so far, written
at most every `WRITE_EVERY_S`), then done with the publication's summary or failed with the reason. A load
whose row stopped moving for `STALE_S` (its process ended mid-way) is shown as failed: its publication's
transaction never committed, so nothing of it is public.

On SQLite the publication holds the store's one write lock from its first row to its commit, and a progress
write on the same file would wait for the very transaction it reports on. There the rows live in a companion
database next to the store's file (`<file>-loads`, WAL as well), which every process opens the same way;
PostgreSQL keeps them in the store's own `opendata_loads` table.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from smartcity.core.db import make_engine, utcnow
from smartcity.core.errors import SmartCityError
from smartcity.core.i18n import N_
from smartcity.opendata.models import Load

STALE_S = 600  # a running load's row unchanged this long: its process is gone
WRITE_EVERY_S = 0.2  # stored rows are written at most this often (a batch is 5,000–50,000 rows)
STOPPED = N_("the load stopped before it ended (was the server restarted?); nothing of it was published")
_COMPANIONS: weakref.WeakKeyDictionary[Any, Engine] = weakref.WeakKeyDictionary()


def _engine(db) -> Engine:
    """The engine holding the loads' rows: the store's, or on SQLite its companion file's (see above)."""
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return db.engine
    found = _COMPANIONS.get(db)
    if found is None:
        found = make_engine(f"sqlite:///{url.database}-loads")
        Load.__table__.create(found, checkfirst=True)
        _COMPANIONS[db] = found
    return found


@contextmanager
def _session(db) -> Iterator[Session]:
    with Session(_engine(db), expire_on_commit=False) as s:
        yield s
        s.commit()


@dataclass(frozen=True)
class LoadView:
    """A load as its pages, its JSON and the CLI show it."""

    id: str
    dataset: str
    resource: str
    filename: str
    owner: str
    via: str
    size: int
    state: str
    total: int | None
    stored: int
    problem_count: int
    error: SmartCityError | None
    result: dict[str, Any] | None
    seconds: float

    @property
    def running(self) -> bool:
        return self.state in ("reading", "storing")


def _view(row: Load) -> LoadView:
    now = utcnow()
    state, error = row.state, None
    if row.error:
        error = SmartCityError(row.error, params=row.error_params or None)
    if state in ("reading", "storing") and now - row.updated_at > timedelta(seconds=STALE_S):
        state, error = "failed", SmartCityError(STOPPED)
    return LoadView(
        row.uid,
        row.dataset,
        row.resource,
        row.file_name,
        row.owner,
        row.via,
        row.size,
        state,
        row.total,
        row.stored,
        row.problem_count,
        error,
        row.result,
        round(((row.ended_at or now) - row.started_at).total_seconds(), 1),
    )


def find(db, load_id: str) -> LoadView | None:
    with _session(db) as s:
        row = s.scalar(select(Load).where(Load.uid == load_id))
        return _view(row) if row is not None else None


def recent(db, dataset: str, limit: int = 10) -> list[LoadView]:
    """A dataset's latest loads, newest first."""
    with _session(db) as s:
        rows = s.scalars(select(Load).where(Load.dataset == dataset).order_by(Load.id.desc()).limit(limit))
        return [_view(r) for r in rows]


class Tracker:
    """One load's progress, written as it happens; its instance is also the publication's `progress`
    callback (rows stored, batch by batch)."""

    def __init__(self, db, load_id: str) -> None:
        self.db, self.id = db, load_id
        self.total: int | None = None
        self.stored = 0
        self._written = 0.0

    def _write(self, **values: Any) -> None:
        with _session(self.db) as s:
            s.execute(update(Load).where(Load.uid == self.id).values(**values, updated_at=utcnow()))
        self._written = time.monotonic()

    def typed(self, total: int, problem_count: int) -> None:
        """The file is read and typed: `total` rows to store, `problem_count` defects found."""
        self.total = total
        self._write(state="storing", total=total, problem_count=problem_count)

    def __call__(self, rows: int) -> None:
        self.stored += rows
        if time.monotonic() - self._written >= WRITE_EVERY_S or self.stored == self.total:
            self._write(stored=self.stored)

    def done(self, published) -> None:
        """The publication committed: its summary (publishing.Published) is the load's result."""
        result = {
            "resource": published.resource_id,
            "version": published.version,
            "rows": published.rows,
            "added": published.added,
            "removed": published.removed,
            "changed": published.changed,
            "problem_count": published.problem_count,
            "problems": published.problems[:200],
            "encoding": published.encoding,
        }
        self._write(
            state="done",
            stored=published.rows,
            problem_count=published.problem_count,
            result=result,
            ended_at=utcnow(),
        )

    def failed(self, error: SmartCityError) -> None:
        self._write(state="failed", error=error.template, error_params=error.params, ended_at=utcnow())


def start(db, *, dataset: str, resource: str, filename: str, size: int, owner: str, via: str = "page") -> Tracker:
    """A new load's row (state `reading`) and its tracker."""
    load_id = uuid.uuid4().hex
    with _session(db) as s:
        now = utcnow()
        s.add(
            Load(
                uid=load_id,
                dataset=dataset,
                resource=resource[:200],
                file_name=filename[:300],
                size=size,
                owner=owner[:80],
                via=via,
                state="reading",
                stored=0,
                problem_count=0,
                error_params={},
                started_at=now,
                updated_at=now,
            )
        )
    return Tracker(db, load_id)
