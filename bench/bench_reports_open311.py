"""Open311 GET requests.json filtered by status and area (page_size=100) over 1,000,000 stored reports:
requests per second and p50/p99 latency with wrk, on SQLite and PostgreSQL, beside Datasette serving the
same rows from the same SQLite file with the equivalent filter, in the same run; and reports accepted per
second through POST requests.json from one client and from 8 at once (the store's single writer,
core.writer, groups their commits); `BENCH_OPEN311=post` runs the POST part alone.

`BENCH_OPEN311=get` runs the GET part alone (our server, 1 worker, SQLite then PostgreSQL). With
`BENCH_OPEN311_SRC=DIR,DIR…` each source tree (say a git worktree of the code before a change, and this one)
serves the same store in turn, twice over, alternating: a before/after comparison in one run, on one machine
load. `BENCH_REPORTS=N` sets the number of stored reports.

Each server runs as its own process (uvicorn, 1 and 2 workers; Datasette is one process) on 127.0.0.1 and
gets the same list of 200 areas (1 km radius, or its bounding box for Datasette), each request the next one.
Quick mode (BENCH_QUICK=1): 50,000 reports and short runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3
import numpy as np
from sqlalchemy import insert, select, text

from smartcity.core import geo
from smartcity.core.city import load_profile
from smartcity.core.db import Database, migrate
from smartcity.core.models import Department
from smartcity.core.seed import seed_profile
from smartcity.reports import service as S
from smartcity.reports.models import Category, Report, grid_cell

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
RADIUS_M = 1000
PAGE = 100
AREAS = 200
CONNECTIONS = 8  # POST clients
CONCURRENCY = (1, 2, 8)  # wrk connections for GET: one at a time, as many as the machine's 2 cores, 8
# Share of each status among reports, for recent (< 30 days) and older reports.
RECENT = {
    "open": 40,
    "acknowledged": 15,
    "in_progress": 20,
    "fixed": 15,
    "closed": 5,
    "duplicate": 3,
    "not_responsible": 1,
    "referred": 1,
}
OLDER = {
    "open": 4,
    "acknowledged": 2,
    "in_progress": 4,
    "fixed": 40,
    "closed": 44,
    "duplicate": 3,
    "not_responsible": 2,
    "referred": 1,
}


# --- data ---------------------------------------------------------------------------------------------------


def _points(n: int, db, profile, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """n points inside the city: 70 % around district centres (busy streets), 30 % spread evenly."""
    index = geo.geo_index(db)
    west, south, east, north = profile.bbox
    centres = np.array([d.point for d in profile.districts])
    lats, lons, codes = [], [], []
    need = n
    while need > 0:
        m = int(need * 1.6) + 100
        k = int(m * 0.7)
        pick = centres[rng.integers(0, len(centres), k)]
        la = np.concatenate([pick[:, 0] + rng.normal(0, 0.012, k), rng.uniform(south, north, m - k)])
        lo = np.concatenate([pick[:, 1] + rng.normal(0, 0.015, k), rng.uniform(west, east, m - k)])
        found = index.districts_at(la, lo)
        keep = [i for i, a in enumerate(found) if a is not None][:need]
        lats.append(la[keep])
        lons.append(lo[keep])
        codes += [found[i].code for i in keep]
        need -= len(keep)
    return np.concatenate(lats), np.concatenate(lons), codes


def generate(db, n: int, seed: int = 311) -> list[dict]:
    """n realistic report rows: spread over districts, categories (routed to their units), statuses, two years."""
    profile = load_profile("seoul")
    rng = np.random.default_rng(seed)
    with db.session() as s:
        S.seed(s, profile)
        cats = list(s.scalars(select(Category).where(Category.campaign_id.is_(None))))
        units = {d.code: d.id for d in s.scalars(select(Department))}
    fallback = units["dasan120"] if "dasan120" in units else next(iter(units.values()))
    lats, lons, districts = _points(n, db, profile, rng)
    now = datetime.now(UTC).replace(microsecond=0)
    ages = rng.exponential(120, n).clip(0, 730)  # days; more recent reports than old ones
    cat_idx = rng.integers(0, len(cats), n)
    recent_p = np.array(list(RECENT.values()), float) / sum(RECENT.values())
    older_p = np.array(list(OLDER.values()), float) / sum(OLDER.values())
    names = list(RECENT)
    status_recent = rng.choice(len(names), n, p=recent_p)
    status_older = rng.choice(len(names), n, p=older_p)
    unit_of: dict[tuple[int, str], int] = {}
    rows = []
    for i in range(n):
        cat = cats[cat_idx[i]]
        district = districts[i]
        key = (cat_idx[i], district)
        if key not in unit_of:
            unit_of[key] = units.get(S.default_unit_code(cat, district), fallback)
        created = now - timedelta(days=float(ages[i]))
        status = names[status_recent[i] if ages[i] < 30 else status_older[i]]
        lat, lon = round(float(lats[i]), 6), round(float(lons[i]), 6)
        rows.append(
            {
                "category_id": cat.id,
                "category_code": cat.code,
                "status": status,
                "lat": lat,
                "lon": lon,
                "district_code": district,
                "h3_cell": h3.latlng_to_cell(lat, lon, 9),
                "grid_cell": grid_cell(lat, lon),
                "title": f"{cat.name_ko} #{i}",
                "description": "벤치마크 신고 / benchmark report",
                "attributes": {},
                "unit_id": unit_of[key],
                "language": "ko",
                "source": "demo",
                "support_count": 0,
                "photo_count": 0,
                "created_at": created,
                "updated_at": created + timedelta(hours=float(rng.uniform(0, 72))),
                "due_at": created + timedelta(days=cat.service_days),
            }
        )
    return rows


def _index_ddl(conn, postgres: bool) -> list[tuple[str, str]]:
    if postgres:
        q = "select indexname, indexdef from pg_indexes where tablename = 'reports' and indexname not like 'pk_%'"
    else:
        q = "select name, sql from sqlite_master where type = 'index' and tbl_name = 'reports' and sql is not null"
    return [(name, ddl) for name, ddl in conn.exec_driver_sql(q)]


def load_sqlite(db, rows: list[dict]) -> float:
    """Bulk insert with SQLAlchemy Core executemany, the indexes dropped during the load and rebuilt after."""
    t0 = time.perf_counter()
    with db.engine.begin() as conn:
        ddl = _index_ddl(conn, False)
        for name, _ in ddl:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        for start in range(0, len(rows), 50_000):
            conn.execute(insert(Report.__table__), rows[start : start + 50_000])
        for _, sql in ddl:
            conn.exec_driver_sql(sql)
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - t0


def load_postgres(db, rows: list[dict]) -> float:
    """Bulk load with COPY (PostgreSQL's own bulk path), indexes rebuilt after, then VACUUM (ANALYZE)."""
    cols = list(rows[0])
    t0 = time.perf_counter()
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(
            "select indexname, indexdef from pg_indexes where tablename = 'reports' "
            "and indexname not like 'pk_%' and indexdef not like '%UNIQUE%'"
        )
        ddl = cur.fetchall()
        for name, _ in ddl:
            cur.execute(f'DROP INDEX "{name}"')
        with cur.copy(f"COPY reports ({', '.join(cols)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([json.dumps(r[c]) if c == "attributes" else r[c] for c in cols])
        for _, sql in ddl:
            cur.execute(sql)
        cur.execute("select setval(pg_get_serial_sequence('reports', 'id'), (select max(id) from reports))")
        raw.commit()
        # What autovacuum does on a live store: statistics, and the visibility map that lets index-only scans
        # skip the table (without it every index entry read costs a heap fetch).
        raw.driver_connection.autocommit = True
        cur.execute("VACUUM (ANALYZE) reports")
        raw.driver_connection.autocommit = False
    finally:
        raw.close()
    return time.perf_counter() - t0


def prepare(url: str) -> Database:
    migrate(url)
    db = Database(url)
    with db.session() as s:
        seed_profile(s, load_profile("seoul"))
        S.seed(s)
    return db


# --- load generation ------------------------------------------------------------------------------------------

LUA = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"errors\\": %%d, \\"non2xx\\": %%d, "
    .. "\\"p50_ms\\": %%.2f, \\"p90_ms\\": %%.2f, \\"p99_ms\\": %%.2f, \\"max_ms\\": %%.2f, \\"bytes\\": %%d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.bytes))
end
"""


def areas(n: int, seed: int = 7) -> list[tuple[float, float]]:
    """Area centres where people live: around district centres."""
    profile = load_profile("seoul")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        d = rng.choice(profile.districts)
        out.append((round(d.point[0] + rng.gauss(0, 0.01), 5), round(d.point[1] + rng.gauss(0, 0.012), 5)))
    return out


def our_paths(points) -> list[str]:
    return [
        f"/open311/v2/requests.json?status=open&lat={lat}&long={lon}&radius={RADIUS_M}&page_size={PAGE}"
        for lat, lon in points
    ]


def datasette_paths(points, db_name: str) -> list[str]:
    """The same filter in Datasette's table API: the circle's bounding box, the three open statuses, the last
    90 days, newest first, 100 rows, as an array of objects (which also turns off counts and facets)."""
    since = (datetime.now(UTC) - timedelta(days=90)).strftime("%Y-%m-%d %H:%M:%S")
    out = []
    for lat, lon in points:
        dlat = RADIUS_M / 111_320.0
        dlon = RADIUS_M / (111_320.0 * math.cos(math.radians(lat)))
        out.append(
            f"/{db_name}/reports.json?status__in=open,acknowledged,in_progress"
            f"&lat__gte={lat - dlat:.6f}&lat__lte={lat + dlat:.6f}&lon__gte={lon - dlon:.6f}"
            f"&lon__lte={lon + dlon:.6f}&created_at__gte={since.replace(' ', '+')}"
            f"&_sort_desc=created_at&_size={PAGE}&_shape=array"
        )
    return out


def wrk(port: int, paths: list[str], seconds: int, workdir: Path, connections: int = CONNECTIONS) -> dict:
    plist = workdir / f"paths-{port}.txt"
    plist.write_text("\n".join(paths) + "\n")
    script = workdir / f"wrk-{port}.lua"
    script.write_text(LUA % {"paths": plist})
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout} {out.stderr}")
    r = json.loads(line[7:])
    r["requests_per_second"] = round(r["requests"] / (r["duration_us"] / 1e6), 1)
    return r


class Served:
    """A server process on a free port, stopped (its own process group) on exit."""

    def __init__(self, args: list[str], env: dict | None = None, cwd: Path | None = None):
        from tests.servers import free_port

        self.port = free_port()
        self.args = [a.replace("{port}", str(self.port)) for a in args]
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd

    def __enter__(self):
        from tests.servers import wait_for_port

        self.proc = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout=60)
        except RuntimeError:
            self.proc.kill()
            raise RuntimeError(f"{self.args[:3]} did not start: {self.proc.stderr.read().decode()[-2000:]}") from None
        return self

    def __exit__(self, *exc):
        os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(5)


def our_server(url: str, workdir: Path, workers: int, src: str | None = None) -> Served:
    env = {
        **({"PYTHONPATH": src} if src else {}),
        "SMARTCITY_DATABASE_URL": url,
        "SMARTCITY_VAR_DIR": str(workdir / "var"),
        "SMARTCITY_SECRET_KEY": "bench",
        "SMARTCITY_RUN_JOBS": "false",
        "SMARTCITY_TILE_URL": "",
        "SMARTCITY_LOG_LEVEL": "warning",
    }
    return Served(
        [
            PY,
            "-m",
            "uvicorn",
            "smartcity.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )


def check(port: int, path: str) -> int:
    import httpx

    r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=30)
    r.raise_for_status()
    return len(r.json())


def measure(port: int, paths: list[str], seconds: int, workdir: Path) -> dict:
    """Throughput and latency at each of CONCURRENCY connections (one at a time, as many as the cores, 8),
    after a warm-up; above the core count the latency includes queueing for a CPU."""
    rows = [check(port, p) for p in paths[:20]]
    wrk(port, paths, max(2, seconds // 5), workdir)  # warm-up
    result: dict = {"rows_per_response_first_20": round(sum(rows) / len(rows), 1)}
    for c in CONCURRENCY:
        r = wrk(port, paths, seconds, workdir, connections=c)
        result[f"c{c}"] = {
            k: r[k]
            for k in ("requests_per_second", "p50_ms", "p90_ms", "p99_ms", "max_ms", "requests", "errors", "non2xx")
        }
    return result


DATASETTE_APP = """
from datasette.app import Datasette


def create():
    return Datasette([%(file)r], settings={"sql_time_limit_ms": 10000, "max_returned_rows": 1000}).app()
"""


def datasette_server(sqlite_file: Path, workdir: Path, workers: int) -> Served:
    """Datasette on the same file: `datasette serve` for one process; for two, the same Datasette app
    under uvicorn --workers (Datasette itself has no workers option)."""
    if workers == 1:
        return Served(
            [
                _datasette(),
                "serve",
                str(sqlite_file),
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--setting",
                "sql_time_limit_ms",
                "10000",
                "--setting",
                "max_returned_rows",
                "1000",
            ],
            cwd=workdir,
        )
    (workdir / "ds_app.py").write_text(DATASETTE_APP % {"file": str(sqlite_file)})
    return Served(
        [
            PY,
            "-m",
            "uvicorn",
            "ds_app:create",
            "--factory",
            "--app-dir",
            str(workdir),
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=workdir,
    )


# --- POST -------------------------------------------------------------------------------------------------


async def _post_many(port: int, key: str, points: list, concurrency: int) -> dict:
    import httpx

    rng = random.Random(11)
    n = len(points)
    latencies: list[float] = []
    status: dict[int, int] = {}
    queue = list(range(n))

    async def worker(client):
        while queue:
            i = queue.pop()
            lat, lon = points[i]
            data = {
                "api_key": key,
                "service_code": "roads-pothole",
                "lat": str(lat),
                "long": str(lon),
                "attribute[size]": rng.choice(["small", "medium", "large"]),
                "description": f"bench post {i}",
                "email": f"citizen{i}@example.org",
            }
            t0 = time.perf_counter()
            r = await client.post(f"http://127.0.0.1:{port}/open311/v2/requests.json", data=data)
            latencies.append(time.perf_counter() - t0)
            status[r.status_code] = status.get(r.status_code, 0) + 1

    async with httpx.AsyncClient(timeout=30) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "posted": n,
        "concurrency": concurrency,
        "by_status": status,
        "accepted_per_second": round(status.get(201, 0) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
    }


def post_rate(url: str, db: Database, workdir: Path, n: int, workers: int = 1) -> dict:
    """POST requests.json from one client, then from CONNECTIONS clients at once, against the same server in
    the same run: accepted reports per second and p50/p99 latency of each, and their ratio (the writer's goal:
    at CONNECTIONS clients p99 under 100 ms and at least one client's rate)."""
    from smartcity.core import accounts

    with db.session() as s:
        _, key = accounts.create_api_key(s, "bench", scope="open311")
    index = geo.geo_index(db)
    points = [p for p in areas(n * 3, seed=13) if index.district_at(*p) is not None]  # inside the city
    one_n = max(n // 4, 50)
    with our_server(url, workdir, workers) as server:
        asyncio.run(_post_many(server.port, key, points[:20], 1))  # warm-up
        one = asyncio.run(_post_many(server.port, key, points[20 : 20 + one_n], 1))
        many = asyncio.run(_post_many(server.port, key, points[20 + one_n : 20 + one_n + n], CONNECTIONS))
    return {
        "one_client": one,
        f"{CONNECTIONS}_clients": many,
        "rate_ratio": round(many["accepted_per_second"] / one["accepted_per_second"], 2),
    }


def run_post(quick: bool = False) -> dict:
    """The POST part alone (BENCH_OPEN311=post): SQLite and PostgreSQL, each on a store of 50,000 reports."""
    from tests.servers import PostgresServer

    posts = 300 if quick else 2000
    workdir = Path(tempfile.mkdtemp(prefix="bench-open311-post-"))
    out: dict = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "stored_reports": 50_000}
    try:
        sqlite_url = f"sqlite:///{workdir / 'reports.db'}"
        db = prepare(sqlite_url)
        rows = generate(db, 50_000)
        load_sqlite(db, rows)
        out["post_sqlite_1w"] = post_rate(sqlite_url, db, workdir, posts)
        db.dispose()
        pg = PostgresServer().start()
        try:
            pg.execute("CREATE DATABASE bench")
            pg_url = pg.url("bench")
            pgdb = prepare(pg_url)
            load_postgres(pgdb, rows)
            out["post_postgres_1w"] = post_rate(pg_url, pgdb, workdir, posts)
            pgdb.dispose()
        finally:
            pg.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def run_get(quick: bool = False) -> dict:
    """The GET part alone (BENCH_OPEN311=get), for each source tree of BENCH_OPEN311_SRC in turn."""
    from tests.servers import PostgresServer

    n = int(os.environ.get("BENCH_REPORTS") or (50_000 if quick else 1_000_000))
    seconds = 4 if quick else 12
    srcs = [s for s in os.environ.get("BENCH_OPEN311_SRC", "").split(",") if s] or [str(ROOT / "src")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-open311-get-"))
    out: dict = {
        "reports": n,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "wrk_seconds": seconds,
        "query": our_paths([(37.5665, 126.978)])[0],
        "sources": srcs,
    }
    paths = our_paths(areas(AREAS))

    def rounds(url: str) -> dict:
        found: dict = {}
        for turn in (1, 2):
            for src in srcs:
                with our_server(url, workdir, 1, src) as server:
                    found[f"{src} #{turn}"] = measure(server.port, paths, seconds, workdir)
        return found

    try:
        sqlite_url = f"sqlite:///{workdir / 'reports.db'}"
        db = prepare(sqlite_url)
        rows = generate(db, n)
        load_sqlite(db, rows)
        out["sqlite_1w"] = rounds(sqlite_url)
        db.dispose()
        pg = PostgresServer().start()
        try:
            pg.execute("CREATE DATABASE bench")
            pg_url = pg.url("bench")
            pgdb = prepare(pg_url)
            load_postgres(pgdb, rows)
            del rows
            out["postgres_1w"] = rounds(pg_url)
            pgdb.dispose()
        finally:
            pg.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


# --- the run ----------------------------------------------------------------------------------------------


def _datasette() -> str:
    if importlib.util.find_spec("datasette") is None:
        subprocess.run([PY, "-m", "pip", "install", "-q", "datasette"], check=True)
    return str(Path(PY).parent / "datasette")


def run(quick: bool = False) -> dict:
    from tests.servers import PostgresServer

    if os.environ.get("BENCH_OPEN311") == "post":
        return run_post(quick)
    if os.environ.get("BENCH_OPEN311") == "get":
        return run_get(quick)

    n = 50_000 if quick else 1_000_000
    seconds = 4 if quick else 12
    posts = 300 if quick else 2000
    workdir = Path(tempfile.mkdtemp(prefix="bench-open311-"))
    out: dict = {
        "reports": n,
        "radius_m": RADIUS_M,
        "page_size": PAGE,
        "areas": AREAS,
        "concurrency": CONCURRENCY,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "wrk_seconds": seconds,
        "query": our_paths([(37.5665, 126.978)])[0],
    }
    try:
        sqlite_file = workdir / "reports.db"
        sqlite_url = f"sqlite:///{sqlite_file}"
        db = prepare(sqlite_url)
        t0 = time.perf_counter()
        rows = generate(db, n)
        out["generate_seconds"] = round(time.perf_counter() - t0, 1)
        out["sqlite_load_seconds"] = round(load_sqlite(db, rows), 1)
        with db.engine.connect() as conn:
            out["open_share"] = round(
                conn.execute(text("select avg(status in ('open','acknowledged','in_progress')) from reports")).scalar(),
                3,
            )
        points = areas(AREAS)
        paths = our_paths(points)
        results: dict = {}
        for workers in (1, 2):
            with our_server(sqlite_url, workdir, workers) as server:
                results[f"smartcity_sqlite_{workers}w"] = measure(server.port, paths, seconds, workdir)
            with datasette_server(sqlite_file, workdir, workers) as server:
                results[f"datasette_sqlite_{workers}w"] = measure(
                    server.port, datasette_paths(points, "reports"), seconds, workdir
                )
        pg = PostgresServer().start()
        try:
            pg.execute("CREATE DATABASE bench")
            pg_url = pg.url("bench")
            pgdb = prepare(pg_url)
            out["postgres_load_seconds"] = round(load_postgres(pgdb, rows), 1)
            del rows
            for workers in (1, 2):
                with our_server(pg_url, workdir, workers) as server:
                    results[f"smartcity_postgres_{workers}w"] = measure(server.port, paths, seconds, workdir)
            out["post_postgres_1w"] = post_rate(pg_url, pgdb, workdir, posts)
            pgdb.dispose()
        finally:
            pg.stop()
        out["post_sqlite_1w"] = post_rate(sqlite_url, db, workdir, posts)
        db.dispose()
        out["get"] = results
        out["vs_datasette"] = {
            f"{w}w_c{c}": round(
                results[f"smartcity_sqlite_{w}w"][f"c{c}"]["requests_per_second"]
                / results[f"datasette_sqlite_{w}w"][f"c{c}"]["requests_per_second"],
                2,
            )
            for w in (1, 2)
            for c in CONCURRENCY
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


if __name__ == "__main__":
    print(json.dumps(run(os.environ.get("BENCH_QUICK") == "1"), indent=2))
