"""Saved analyses and their runs: hot spots of imported demand, run off the request with their progress kept in
the store (any serving process shows it), results kept per cell (aggregated, suppressed under k records)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from smartcity.analytics.cells import demand, local_days_to_utc
from smartcity.analytics.engine import KINDS
from smartcity.analytics.hotspots import hot_spots
from smartcity.analytics.models import Analysis, CellResult, Run
from smartcity.analytics.trends import period_of
from smartcity.core.auth import Identity
from smartcity.core.context import context_of
from smartcity.core.db import Database, utcnow
from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.events import publish
from smartcity.core.jobs import in_background

log = logging.getLogger(__name__)
DAY_TYPES = ("all", "weekday", "weekend")


@dataclass(frozen=True)
class AnalysisSpec:
    """What an analyst asks for: hot spots of the demand of `kinds` over local `hours` on `day_type` days."""

    name: str
    kinds: list[str]
    hours: list[int]
    day_type: str = "all"
    shared: bool = False
    rerun_hours: int | None = None
    # The period of the demand read: local days (the city's zone) written YYYY-MM-DD, both included; empty: open.
    start: str = ""
    end: str = ""


def _check(spec: AnalysisSpec) -> tuple[date | None, date | None]:
    """The spec's period as dates, or InvalidInput naming what is wrong."""
    if not spec.name.strip() or len(spec.name) > 200:
        raise InvalidInput("name: between 1 and 200 characters", code="invalid_name")
    unknown = [k for k in spec.kinds if k not in KINDS]
    if not spec.kinds or unknown:
        raise InvalidInput(f"kinds: one or more of {', '.join(KINDS)}", code="invalid_kinds")
    if not spec.hours or any(not 0 <= h <= 23 for h in spec.hours):
        raise InvalidInput("hours: local hours between 0 and 23", code="invalid_hours")
    if spec.day_type not in DAY_TYPES:
        raise InvalidInput(f"day_type: one of {', '.join(DAY_TYPES)}", code="invalid_day_type")
    if spec.rerun_hours is not None and not 1 <= spec.rerun_hours <= 24 * 31:
        raise InvalidInput("rerun_hours: between 1 and 744, or none", code="invalid_rerun")
    return period_of(spec.start.strip(), spec.end.strip())


def save(db: Database, who: Identity, spec: AnalysisSpec) -> int:
    """Keep an analysis for `who`; its id."""
    first, last = _check(spec)
    with db.session() as s:
        row = Analysis(
            name=spec.name.strip(),
            kinds=",".join(dict.fromkeys(spec.kinds)),
            hours=",".join(str(h) for h in sorted(set(spec.hours))),
            day_type=spec.day_type,
            owner_id=who.user_id,
            shared=spec.shared,
            rerun_hours=spec.rerun_hours,
            published=False,
            start_day=first,
            end_day=last,
        )
        s.add(row)
        s.flush()
        return row.id


def _visible(s: Session, who: Identity, analysis_id: int) -> Analysis:
    row = s.get(Analysis, analysis_id)
    # Another analyst's unshared analysis is answered as missing, as a wrong id is.
    if row is None or not (row.shared or row.owner_id == who.user_id or who.role == "admin"):
        raise NotFound("no such analysis")
    return row


def analyses(db: Database, who: Identity) -> list[dict]:
    """The analyses `who` may see: their own and the shared ones, newest first, with their latest run."""
    with db.session() as s:
        rows = s.scalars(
            select(Analysis)
            .where((Analysis.owner_id == who.user_id) | Analysis.shared | (who.role == "admin"))
            .order_by(Analysis.id.desc())
        ).all()
        out = []
        for a in rows:
            last = s.scalars(select(Run).where(Run.analysis_id == a.id).order_by(Run.id.desc()).limit(1)).first()
            out.append({**_analysis(a), "last_run": _run(last) if last else None})
        return out


def _analysis(a: Analysis) -> dict:
    return {
        "id": a.id,
        "name": a.name,
        "kinds": a.kinds.split(","),
        "hours": [int(h) for h in a.hours.split(",")],
        "day_type": a.day_type,
        "shared": a.shared,
        "rerun_hours": a.rerun_hours,
        "published": a.published,
        "start": a.start_day.isoformat() if a.start_day else None,
        "end": a.end_day.isoformat() if a.end_day else None,
    }


def _run(r: Run) -> dict:
    return {
        "id": r.id,
        "analysis_id": r.analysis_id,
        "status": r.status,
        "progress": r.progress,
        "message": r.message,
        "cells": r.cells,
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
    }


def start_run(db: Database, settings, who: Identity | None, analysis_id: int, *, background: bool = True) -> int:
    """Queue a run of the analysis (`who` None: the scheduler) and start it in a thread; the run's id."""
    with db.session() as s:
        if who is not None:
            _visible(s, who, analysis_id)
        elif s.get(Analysis, analysis_id) is None:
            raise NotFound("no such analysis")
        run = Run(analysis_id=analysis_id, status="queued", progress=0.0, message="", cells=0)
        s.add(run)
        s.flush()
        run_id = run.id
    if background:
        # The app's stop waits for it (core.jobs): a run cut off mid-write would stay "running" for ever.
        in_background(db, f"analytics-run-{run_id}", execute, db, settings, run_id)
    else:
        execute(db, settings, run_id)
    return run_id


def _progress(db: Database, run_id: int, **values) -> None:
    with db.session() as s:
        s.execute(update(Run).where(Run.id == run_id).values(**values))


def execute(db: Database, settings, run_id: int) -> None:
    """Run it: demand per cell (suppressed), Gi* over the cells, the results stored with the run in one go."""
    with db.session() as s:
        run = s.get(Run, run_id)
        a = s.get(Analysis, run.analysis_id)
        analysis_id = a.id
        kinds, hours, day_type = a.kinds.split(","), [int(h) for h in a.hours.split(",")], a.day_type
        since, until = _bounds(db, a)
    try:
        _progress(db, run_id, status="running", progress=0.1, message="counting demand per cell")
        found = demand(settings, kinds, hours, since=since, until=until)
        if day_type != "all":
            found = found[found["day_type"] == day_type]
        per_cell = found.groupby("cell", as_index=False)["count"].sum()
        if per_cell.empty:
            raise InvalidInput(
                "no data for these kinds, hours, days and period (or every cell under the privacy threshold)"
            )
        _progress(db, run_id, progress=0.5, message="finding hot spots")
        spots = hot_spots(per_cell["cell"], per_cell["count"])
        with db.session() as s:
            s.execute(delete(CellResult).where(CellResult.run_id == run_id))
            s.add_all(
                CellResult(run_id=run_id, cell=cell, count=int(count), z=float(z), p=float(p), significance=kind)
                for cell, count, z, p, kind in zip(
                    spots["cell"], spots["value"], spots["z"], spots["p"], spots["class"], strict=True
                )
            )
            s.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(status="done", progress=1.0, message="", cells=len(spots), finished_at=utcnow())
            )
            if s.get(Analysis, analysis_id).published:
                _publication_changed(s, analysis_id)
    except Exception as exc:  # the run says why it failed; the analyst sees it on the page
        if not isinstance(exc, InvalidInput):
            log.exception("analytics run %s failed", run_id)
        message = exc.message if isinstance(exc, InvalidInput) else f"failed: {type(exc).__name__}"
        _progress(db, run_id, status="failed", progress=1.0, message=message, finished_at=utcnow())


def _bounds(db: Database, a: Analysis):
    return local_days_to_utc(a.start_day, a.end_day, context_of(db).profile.timezone)


def run_status(db: Database, who: Identity, run_id: int) -> dict:
    """The run's progress and outcome, with its analysis's period (`start`, `end`: local days or None)."""
    with db.session() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFound("no such run")
        a = _visible(s, who, run.analysis_id)
        return {**_run(run), "start": _analysis(a)["start"], "end": _analysis(a)["end"]}


def results(db: Database, who: Identity | None, run_id: int) -> list[dict]:
    """A run's cells: cell, count, z, p, significance (`who` None: the open data publication)."""
    with db.session() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFound("no such run")
        if who is not None:
            _visible(s, who, run.analysis_id)
        rows = s.scalars(select(CellResult).where(CellResult.run_id == run_id).order_by(CellResult.cell)).all()
        return [{"cell": r.cell, "count": r.count, "z": r.z, "p": r.p, "significance": r.significance} for r in rows]


# The open data dataset `analytics.hotspots` follows this topic: published again when an analysis is published or
# withdrawn, and when a published analysis has a new result.
PUBLICATION = "analytics.publication"


def _publication_changed(session: Session, analysis_id: int) -> None:
    publish(session, PUBLICATION, {"analysis": analysis_id}, audience="analytics.analyse")


def set_published(db: Database, who: Identity, analysis_id: int, published: bool) -> None:
    with db.session() as s:
        a = _visible(s, who, analysis_id)
        if a.published != published:
            a.published = published
            _publication_changed(s, a.id)


def rerun_due(db: Database, settings) -> list[int]:
    """Start a run of every analysis whose rerun interval has passed since its last run (the module's job)."""
    now = utcnow()
    due = []
    with db.session() as s:
        for a in s.scalars(select(Analysis).where(Analysis.rerun_hours.is_not(None))).all():
            last = s.scalars(select(Run).where(Run.analysis_id == a.id).order_by(Run.id.desc()).limit(1)).first()
            if last is None or last.started_at <= now - timedelta(hours=a.rerun_hours):
                due.append(a.id)
    return [start_run(db, settings, None, analysis_id, background=False) for analysis_id in due]


def published_rows(session: Session):
    """The open data rows: each published analysis's latest finished run, per cell (aggregated, suppressed)."""
    for a in session.scalars(select(Analysis).where(Analysis.published).order_by(Analysis.id)).all():
        run = session.scalars(
            select(Run).where(Run.analysis_id == a.id, Run.status == "done").order_by(Run.id.desc()).limit(1)
        ).first()
        if run is None:
            continue
        for r in session.scalars(select(CellResult).where(CellResult.run_id == run.id).order_by(CellResult.cell)):
            yield {
                "analysis": a.name,
                "hours": a.hours,
                "day_type": a.day_type,
                "period_start": a.start_day.isoformat() if a.start_day else None,
                "period_end": a.end_day.isoformat() if a.end_day else None,
                "cell": r.cell,
                "count": r.count,
                "z": round(r.z, 4),
                "p": round(r.p, 4),
                "significance": r.significance,
                "computed_at": (run.finished_at or run.started_at).isoformat(),
            }


def hourly(db: Database, settings, who: Identity, run_id: int) -> list[dict]:
    """The run's analysis's demand per cell and local hour (suppressed under k), for the map's hour slider."""
    with db.session() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFound("no such run")
        a = _visible(s, who, run.analysis_id)
        kinds, hours, day_type = a.kinds.split(","), [int(h) for h in a.hours.split(",")], a.day_type
        since, until = _bounds(db, a)
    found = demand(settings, kinds, hours, since=since, until=until)
    if day_type != "all":
        found = found[found["day_type"] == day_type]
    per = found.groupby(["cell", "hour"], as_index=False)["count"].sum()
    return [
        {"cell": c, "hour": int(h), "count": int(n)}
        for c, h, n in zip(per["cell"], per["hour"], per["count"], strict=True)
    ]
