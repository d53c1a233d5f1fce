"""The planner page's runs, each in a process of its own: the route search is seconds of CPU that would hold the
serving process (its event loop's thread pool and the GIL) while it ran.

One run at a time per data folder: the page takes an exclusive lock on `plans/.running.lock` before it starts a
run and hands the locked file to the run's process, which holds it until it ends (the lock goes with the process,
even when it is killed). A second run asked for meanwhile is refused (409) with who asked for the one running,
when, with which constraints, how far it is, and a link to it — not queued: a waiting run would need a process
of its own blocked on the lock (flock does not wait in order, and a process that waits cannot yet tell a waiting
run from a lost one). A run whose
status still says it is working while nobody holds the lock for it lost its process: it is shown as failed.

The run's folder holds what the process needs (job.json: constraints, options, who asked; stops.csv; baseline.txt)
and what it says (status.json: state, step, progress 0–1, its pid; replaced whole at each change). The process is
`python -m smartcity.analytics.planner_job <folder> <the locked file's descriptor>`, with the serving process's
settings in its environment (never written to disk: the database URL may hold a password).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path

from smartcity.analytics.planner import Constraints, PlannerOptions
from smartcity.analytics.planner_run import (
    agency_of,
    demand_of,
    make_plan,
    runs_dir,
    write_outputs,
    write_status,
)
from smartcity.core.errors import SmartCityError
from smartcity.settings import Settings, variable

LOCK_NAME = ".running.lock"
COLOURS = ("#1d4ed8", "#b91c1c", "#047857", "#7c3aed", "#c2410c", "#0e7490", "#be185d", "#4d7c0f", "#92400e")
WORKING = ("queued", "running")
# Shares of the progress bar: reading the demand, the route search (by its time limit), writing the files.
DEMAND_DONE, SEARCH_DONE = 0.15, 0.9


class Busy(Exception):
    """Another run holds the lock; `run_id` is the one running (empty when it could not be read)."""

    def __init__(self, run_id: str):
        super().__init__(run_id)
        self.run_id = run_id


def _take_lock(root: Path) -> int:
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(running_id(root)) from None
    return fd


def running_id(root: Path) -> str:
    """The id of the run holding the lock, as its starter wrote it ("" when there is none)."""
    try:
        return (root / LOCK_NAME).read_text(encoding="ascii").strip()
    except OSError:
        return ""


def is_alive(root: Path, run_id: str) -> bool:
    """Whether a process still works on `run_id`: the lock is held, by that run."""
    try:
        fd = _take_lock(root)
    except Busy as busy:
        return busy.run_id == run_id
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return False


def child_env(settings: Settings) -> dict[str, str]:
    """The environment that gives the run's process these settings: the core's fields and the modules' variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    for f in fields(Settings):
        if "help" in f.metadata:
            env[variable(f, "SMARTCITY_")] = str(getattr(settings, f.name))
    env.update(settings.env)
    return env


def start(settings: Settings, path: Path, job: dict, stops: bytes, baseline: bytes | None) -> subprocess.Popen:
    """Start a run in `path` (a new folder under runs_dir) in its own process, or raise Busy."""
    root = runs_dir(settings)
    fd = _take_lock(root)
    job = {**job, "started": time.time()}  # when it was asked for: what a refused second run is told
    try:
        path.mkdir(parents=True)
        (path / "stops.csv").write_bytes(stops)
        if baseline:
            (path / "baseline.txt").write_bytes(baseline)
        (path / "job.json").write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
        write_status(
            path,
            state="queued",
            owner=job["owner"],
            constraints=job["values"],
            started=job["started"],
            step="start",
            progress=0.0,
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, path.name.encode("ascii"), 0)
        with open(path / "log.txt", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "smartcity.analytics.planner_job", str(path), str(fd)],
                env=child_env(settings),
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    finally:
        os.close(fd)  # the child's copy keeps the lock
    # Reaped when it ends, so no process of ours lingers as a zombie.
    threading.Thread(target=proc.wait, name=f"night-plan-{path.name[:8]}", daemon=True).start()
    return proc


def result_of(night) -> dict:
    """What the page shows and its script draws: routes with their stops, hot cells, the baseline, the comparison."""
    served = {c.stop.id: c.demand for c in night.plan.candidates}
    on_routes = {s.id for r in night.plan.routes for s in r.stops}
    return {
        "routes": [
            {
                "name": r.name,
                "colour": COLOURS[i % len(COLOURS)],
                "km": r.km,
                "round_trip_min": r.round_trip_min,
                "buses": r.buses,
                "demand": r.demand,
                "riders": r.riders,
                "stops": [
                    {"id": s.id, "name": s.name, "lat": s.lat, "lon": s.lon, "demand": served.get(s.id, 0.0)}
                    for s in r.stops
                ],
            }
            for i, r in enumerate(night.plan.routes)
        ],
        "cells": _hot_cells(night, on_routes),
        "baseline": [
            {"name": r.name, "stops": [{"id": s.id, "lat": s.lat, "lon": s.lon} for s in r.stops]}
            for r in night.baseline or ()
        ],
        "comparison": [c.__dict__ for c in night.comparison],
        "max_km": night.plan.max_km,
    }


def _hot_cells(night, on_routes: set[str]) -> list[dict]:
    """The clustered hot cells as hexagons (lat, lon rings) with their demand, marked when a route's stop serves
    them: what the script's map shades under the routes."""
    import h3

    return [
        {
            "cell": cell,
            "demand": night.demand.get(cell, 0.0),
            "served": c.stop.id in on_routes,
            "ring": [[round(lat, 6), round(lon, 6)] for lat, lon in h3.cell_to_boundary(cell)],
        }
        for c in night.plan.candidates
        for cell in c.cells
    ]


def run(path: Path) -> None:
    """The run's process: demand, the plan, the files, result.json; its status kept up to date throughout."""
    from smartcity.core.city import load_profile

    settings = Settings.from_env()
    job = json.loads((path / "job.json").read_text(encoding="utf-8"))
    started = job.get("started") or time.time()
    mark = {"owner": job["owner"], "constraints": job["values"], "pid": os.getpid(), "started": started}

    def status(state: str, step: str, progress: float, **more) -> None:
        write_status(path, state=state, step=step, progress=round(progress, 3), **mark, **more)

    try:
        status("running", "demand", 0.02)
        profile = load_profile(settings.city)
        constraints = Constraints(**job["constraints"])
        options = PlannerOptions(**job["options"])
        demand = demand_of(settings, ("phone",))
        baseline = path / "baseline.txt"
        searching = threading.Event()
        began = time.monotonic()

        def tick() -> None:
            # The search itself reports nothing until it ends; its time limit is what bounds it.
            while not searching.wait(1.0):
                share = min((time.monotonic() - began) / max(options.time_limit_s, 1e-3), 1.0)
                status("running", "search", DEMAND_DONE + (SEARCH_DONE - DEMAND_DONE) * share)

        status("running", "search", DEMAND_DONE)
        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            night = make_plan(
                demand,
                (path / "stops.csv").read_bytes(),
                profile,
                constraints,
                options,
                baseline.read_bytes() if baseline.exists() else None,
            )
        finally:
            searching.set()
            ticker.join()
        status("running", "files", SEARCH_DONE)
        write_outputs(night, agency_of(profile, settings.site_url), path)
        (path / "result.json").write_text(json.dumps(result_of(night), ensure_ascii=False), encoding="utf-8")
        status("done", "done", 1.0)
    except SmartCityError as exc:
        status("failed", "failed", 1.0, template=exc.template, params=exc.params)
    except Exception as exc:  # the page says the run failed instead of spinning for ever
        status("failed", "failed", 1.0, template=str(exc) or type(exc).__name__, params={})
        raise


def job_of(analyst: str, values: dict, constraints: Constraints, options: PlannerOptions) -> dict:
    return {"owner": analyst, "values": values, "constraints": asdict(constraints), "options": asdict(options)}


if __name__ == "__main__":
    # The locked file came open from the starter (pass_fds). Closed once the final status is written, so the next
    # plan may start at once; if this process dies first, the lock goes with it.
    held = int(sys.argv[2])
    try:
        run(Path(sys.argv[1]))
    finally:
        os.close(held)
