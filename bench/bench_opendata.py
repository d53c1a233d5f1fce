"""Open Data Plaza (issue 14's PERFORMANCE section), in one run on one SQLite store:

1. package_search over 5,000 published datasets (synthetic ko/en titles, tags, organisations, formats, themes,
   indexed by catalogue.index_dataset, the publishing path's own call): a query and 3 facets through the CKAN
   endpoint (/api/3/action/package_search) of a server the bench starts; p50/p99 with wrk (goal p99 < 20 ms).
2. One resource of 1,000,000 rows (a generated CSV: id, district, category, date, count, amount, lat, lon)
   loaded as `smartcity opendata load` does (loading.load_bytes, then publishing.publish_loaded in one
   transaction): wall time per step (goal < 20 s in all).
3. datastore_search on that resource with two filters (district, category), sorted by date, 100 rows, beside
   Datasette serving the same table from the same SQLite file with the same query through its JSON API
   (`?district__exact=…&category__exact=…&_sort_desc=date&_size=100`); both answer the filtered total too
   (CKAN's include_total and Datasette's count). The same wrk load (same paths order, same connections)
   drives both; rows/s and the ratio (goal ≥ 2×).
4. The DCAT catalogue of the 5,000 datasets: /catalog.ttl (its default page) and /catalog.ttl?page_size=5000
   (all in one answer): time to first byte (goal < 200 ms) and to the last, a new connection each time.

Each server is its own process (uvicorn, 1 worker; `datasette serve`) on 127.0.0.1; the machine's load
average at the start and end is in the result (the machine is shared). Quick mode (BENCH_QUICK=1): 500
datasets, 50,000 rows, short wrk runs. `BENCH_OPENDATA_ROWS=N` sets the resource's row count.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import numpy as np
from sqlalchemy import select

from bench.bench_reports_open311 import _datasette, datasette_server, our_server, wrk
from smartcity.core.auth import Identity
from smartcity.core.city import load_profile
from smartcity.core.db import Database, migrate
from smartcity.core.seed import seed_profile

WHO = Identity(username="bench", role="admin", via="session")
CONCURRENCY = (1, 4)  # wrk connections: one at a time (latency), then more than the 2 cores (throughput)
PAGE = 100
FACET_FIELDS = ["organization", "tags", "res_format"]

# (Korean, English) subjects of city datasets, as a city's portal names them.
SUBJECTS = [
    ("공영주차장 현황", "Public car parks"),
    ("불법주정차 단속 내역", "Illegal parking enforcement"),
    ("공공 와이파이 설치 위치", "Public Wi-Fi locations"),
    ("미세먼지 측정 정보", "Fine dust measurements"),
    ("버스정류소 위치 정보", "Bus stop locations"),
    ("따릉이 대여소 현황", "Ttareungyi bike stations"),
    ("CCTV 설치 현황", "CCTV installations"),
    ("무더위 쉼터 현황", "Heatwave shelters"),
    ("도서관 이용 현황", "Library use"),
    ("어린이집 정보", "Daycare centres"),
    ("음식점 위생등급", "Restaurant hygiene grades"),
    ("쓰레기 무단투기 단속", "Illegal dumping enforcement"),
    ("가로등 설치 현황", "Street lights"),
    ("공원 현황", "Parks"),
    ("전기차 충전소 위치", "EV charging stations"),
    ("교통사고 발생 현황", "Traffic accidents"),
    ("인구 통계", "Population statistics"),
    ("문화행사 정보", "Cultural events"),
    ("재난 대피소 현황", "Disaster shelters"),
    ("상수도 사용량", "Water use"),
]
TAGS = [
    "교통", "주차", "환경", "대기질", "안전", "복지", "문화", "관광", "보건", "교육", "인구", "경제",
    "재난", "공원", "자전거", "버스", "와이파이", "CCTV", "위생", "에너지", "parking", "transport", "open-data",
]  # fmt: skip
THEMES = ["transport", "environment", "safety", "welfare", "culture", "economy", "health", "education"]
FORMATS = ["CSV", "JSON", "XLSX", "XML", "SHP", "API", "PDF"]
LICENCES = ["KOGL-Type1", "KOGL-Type1", "KOGL-Type1", "KOGL-Type2", "KOGL-Type3", "KOGL-Type4", "CC-BY-4.0"]
QUERIES = ["주차장", "와이파이", "미세먼지", "버스", "공원", "parking", "bike", "shelters", "CCTV", "교통사고"]
CATEGORIES = ["불법주정차", "쓰레기투기", "도로파손", "가로등고장", "불법광고물", "소음", "악취", "공사장"]


def prepare(url: str) -> Database:
    from smartcity.opendata import catalogue

    migrate(url)
    db = Database(url)
    with db.session() as s:
        seed_profile(s, load_profile("seoul"))
        catalogue.seed_organisations(s)
    return db


# --- 1. the catalogue ----------------------------------------------------------------------------------------


def make_datasets(db: Database, n: int, seed: int = 14) -> dict:
    """n published datasets with 1–3 resources each (metadata only), written in bulk, then each indexed by
    catalogue.index_dataset as publishing does; the seconds of each step."""
    from smartcity.opendata import catalogue
    from smartcity.opendata.models import Dataset, DatasetTag, Organisation, Resource

    rng = random.Random(seed)
    districts = load_profile("seoul").districts
    t0 = time.perf_counter()
    with db.session() as s:
        orgs = list(s.scalars(select(Organisation.id)))
        now = datetime.now(UTC)
        made = []
        for i in range(n):
            subject_ko, subject_en = rng.choice(SUBJECTS)
            d = rng.choice(districts)
            year = rng.randint(2015, 2026)
            modified = now - timedelta(days=rng.uniform(0, 2000))
            ds = Dataset(
                uid=catalogue.new_uid(),
                name=f"bench-{i:05d}",
                title_ko=f"{d.name_ko} {subject_ko} ({year})",
                title_en=f"{subject_en}, {d.name_en} ({year})",
                description_ko=f"{d.name_ko}의 {subject_ko} 자료입니다. {year}년 기준으로 매월 갱신합니다.",
                description_en=f"{subject_en} in {d.name_en}, as of {year}, updated monthly.",
                organisation_id=rng.choice(orgs),
                licence=rng.choice(LICENCES),
                publisher=d.name_ko,
                update_frequency=rng.choice(["monthly", "yearly", "daily", "irregular"]),
                spatial=d.name_ko,
                theme=rng.choice(THEMES),
                published=True,
                created_at=modified - timedelta(days=rng.uniform(0, 400)),
                modified_at=modified,
            )
            made.append((ds, rng.sample(TAGS, rng.randint(2, 5)), rng.sample(FORMATS, rng.randint(1, 3))))
        s.add_all(ds for ds, _, _ in made)
        s.flush()
        for ds, tags, formats in made:
            s.add_all(DatasetTag(dataset_id=ds.id, tag=t) for t in tags)
            s.add_all(
                Resource(uid=catalogue.new_uid(), dataset_id=ds.id, name=f"{ds.name}-{k}", format=f, source="upload")
                for k, f in enumerate(formats)
            )
        s.flush()
        generated = time.perf_counter() - t0
        t1 = time.perf_counter()
        for ds, _, _ in made:
            catalogue.index_dataset(s, ds)
    return {"generate_seconds": round(generated, 1), "index_seconds": round(time.perf_counter() - t1, 1)}


def search_paths(n: int = 200, seed: int = 5) -> list[str]:
    """package_search as CKAN's clients send it: q, three facet fields (a JSON list), 10 rows; half the
    requests also filter on one facet value (fq)."""
    rng = random.Random(seed)
    facets = quote(json.dumps(FACET_FIELDS))
    out = []
    for i in range(n):
        q = quote(rng.choice(QUERIES))
        fq = f"&fq={quote('res_format:' + rng.choice(FORMATS[:4]))}" if i % 2 else ""
        out.append(f"/api/3/action/package_search?q={q}&facet.field={facets}&rows=10{fq}")
    return out


def search_cpu(db: Database, paths: list[str], calls: int = 500) -> dict:
    """CPU per package_search call in this process (the action as the GET route runs it: parameters parsed,
    the search, the package dicts, the envelope encoded): what each call costs the server's one core, so what
    concurrent calls queue for. Median and p90 over `calls`, after 50 unmeasured ones."""
    from urllib.parse import urlsplit

    from starlette.datastructures import QueryParams

    from smartcity.opendata import ckan

    parsed = []
    for path in paths:
        query = QueryParams(urlsplit(path).query)
        parsed.append({k: ckan._decoded(query[k]) for k in query})

    def one(i: int) -> None:
        with db.session() as s:
            result = ckan.package_search(s, parsed[i % len(parsed)], "http://127.0.0.1")
        ckan.Answer({"help": "", "success": True, "result": result})

    for i in range(50):
        one(i)
    spent = []
    for i in range(calls):
        t0 = time.process_time()
        one(i)
        spent.append(time.process_time() - t0)
    spent.sort()
    return {
        "calls": calls,
        "cpu_ms_p50": round(statistics.median(spent) * 1000, 2),
        "cpu_ms_p90": round(spent[int(calls * 0.9)] * 1000, 2),
        "load_average": os.getloadavg(),
    }


# --- 2. the resource -----------------------------------------------------------------------------------------


def make_csv(n: int, seed: int = 1) -> bytes:
    """A CSV of n rows with typed columns (integer, text, date, integer, float, lat/lon), UTF-8."""
    rng = np.random.default_rng(seed)
    districts = np.array([d.name_ko for d in load_profile("seoul").districts])
    centres = np.array([d.point for d in load_profile("seoul").districts])
    di = rng.integers(0, len(districts), n)
    days = rng.integers(0, 3 * 365, n)
    start = date(2023, 1, 1).toordinal()
    dates = np.array([date.fromordinal(start + k).isoformat() for k in range(3 * 365)])[days]
    lat = np.round(centres[di, 0] + rng.normal(0, 0.01, n), 6)
    lon = np.round(centres[di, 1] + rng.normal(0, 0.012, n), 6)
    out = io.StringIO()
    out.write("id,district,category,date,count,amount,lat,lon\n")
    cats = np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES), n)]
    counts = rng.integers(1, 50, n)
    amounts = np.round(rng.gamma(2.0, 15000.0, n), 1)
    dist = districts[di]
    for i in range(n):
        out.write(f"{i + 1},{dist[i]},{cats[i]},{dates[i]},{counts[i]},{amounts[i]},{lat[i]},{lon[i]}\n")
    return out.getvalue().encode()


def load_resource(db: Database, data: bytes) -> tuple[dict, str, str]:
    """The CSV loaded as `smartcity opendata load FILE --dataset … ` does: (seconds per step, the resource's
    uid, its table)."""
    from smartcity.opendata import loading, publishing

    t0, c0 = time.perf_counter(), time.process_time()
    loaded = loading.load_bytes(data, "bench-rows.csv", {})
    t1, c1 = time.perf_counter(), time.process_time()
    with db.session() as s:
        dataset = publishing.save_dataset(
            s, WHO, publishing.DatasetInfo("bench-rows", title_ko="벤치마크 민원 자료", title_en="Bench rows")
        )
        done = publishing.publish_loaded(s, WHO, dataset, "rows", loaded, data, "bench-rows.csv")
        t2 = time.perf_counter()
    t3, c3 = time.perf_counter(), time.process_time()
    with db.session() as s:
        from smartcity.opendata.models import Resource

        table = s.scalar(select(Resource.table).where(Resource.uid == done.resource_id))
    return (
        {
            "rows": done.rows,
            "columns": {c["id"]: c["type"] for c in done.columns},
            "problems": done.problem_count,
            "csv_mb": round(len(data) / 1e6, 1),
            "read_and_type_seconds": round(t1 - t0, 1),
            "store_seconds": round(t2 - t1, 1),
            "commit_seconds": round(t3 - t2, 1),
            "total_seconds": round(t3 - t0, 1),
            # On a shared machine the wall time includes waiting for a core: the process's own CPU time too.
            "read_and_type_cpu_seconds": round(c1 - c0, 1),
            "total_cpu_seconds": round(c3 - c0, 1),
        },
        done.resource_id,
        table,
    )


def filter_pairs(n: int = 200, seed: int = 9) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    districts = [d.name_ko for d in load_profile("seoul").districts]
    return [(rng.choice(districts), rng.choice(CATEGORIES)) for _ in range(n)]


def datastore_paths(uid: str, pairs) -> list[str]:
    return [
        f"/api/3/action/datastore_search?resource_id={uid}"
        f"&filters={quote(json.dumps({'district': d, 'category': c}, ensure_ascii=False))}"
        f"&sort={quote('date desc')}&limit={PAGE}"
        for d, c in pairs
    ]


def datasette_paths(db_name: str, table: str, pairs, extra: str = "&_nosuggest=1") -> list[str]:
    """Datasette's table JSON with the same filters, sort and page; by default without its suggested facets
    (extra queries our endpoint does not run), keeping its filtered count (our include_total)."""
    return [
        f"/{db_name}/{table}.json?district__exact={quote(d)}&category__exact={quote(c)}&_sort_desc=date"
        f"&_size={PAGE}{extra}"
        for d, c in pairs
    ]


# --- measuring -----------------------------------------------------------------------------------------------


def _get_json(port: int, path: str) -> dict:
    import httpx

    r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=60)
    r.raise_for_status()
    return r.json()


def measure(port: int, paths: list[str], seconds: int, workdir: Path) -> dict:
    """wrk at each of CONCURRENCY connections over `paths` in turn, after a warm-up."""
    wrk(port, paths, max(2, seconds // 4), workdir, connections=1)
    found: dict = {}
    for c in CONCURRENCY:
        before = os.getloadavg()[0]
        r = wrk(port, paths, seconds, workdir, connections=c)
        found[f"c{c}"] = {
            k: r[k]
            for k in ("requests_per_second", "p50_ms", "p90_ms", "p99_ms", "max_ms", "requests", "errors", "non2xx")
        }
        # The machine is shared: what else ran during this very measurement (1-minute average, before and after).
        found[f"c{c}"]["load_average"] = [round(before, 1), round(os.getloadavg()[0], 1)]
    return found


def first_byte(port: int, path: str, times: int) -> dict | None:
    """Time to the first body byte and to the last, `times` over (a fresh connection each); None if the server
    has no such route."""
    import httpx

    ttfb, total, size, body = [], [], 0, b""
    for _ in range(times):
        with httpx.Client(timeout=120) as client:
            t0 = time.perf_counter()
            with client.stream("GET", f"http://127.0.0.1:{port}{path}") as r:
                if r.status_code == 404:
                    return None
                r.raise_for_status()
                first = None
                parts = []
                for chunk in r.iter_bytes():
                    if first is None:
                        first = time.perf_counter()
                    parts.append(chunk)
            body = b"".join(parts)
            size = len(body)
            end = time.perf_counter()
        ttfb.append((first or end) - t0)
        total.append(end - t0)
    return {
        "runs": times,
        "bytes": size,
        "datasets_typed_dcat_Dataset": body.count(b"a dcat:Dataset"),  # what the answer held (Turtle)
        "ttfb_ms_median": round(statistics.median(ttfb) * 1000, 1),
        "ttfb_ms_max": round(max(ttfb) * 1000, 1),
        "total_ms_median": round(statistics.median(total) * 1000, 1),
        "total_ms_max": round(max(total) * 1000, 1),
    }


# --- the run -------------------------------------------------------------------------------------------------


def run(quick: bool = False) -> dict:
    n_datasets = 500 if quick else 5000
    n_rows = int(os.environ.get("BENCH_OPENDATA_ROWS") or (50_000 if quick else 1_000_000))
    seconds = 4 if quick else 10
    workdir = Path(tempfile.mkdtemp(prefix="bench-opendata-"))
    env = {
        "SMARTCITY_VAR_DIR": str(workdir / "var"),  # where publishing keeps the file (here and in the server)
        "SMARTCITY_OPENDATA_LIVE_DATASETS": "false",  # no module feed republishing during the measurements
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    out: dict = {
        "datasets": n_datasets,
        "rows": n_rows,
        "page_size": PAGE,
        "concurrency": CONCURRENCY,
        "wrk_seconds": seconds,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }
    datasette = _datasette()
    try:
        sqlite_file = workdir / "store.db"
        url = f"sqlite:///{sqlite_file}"
        db = prepare(url)
        out["catalogue"] = make_datasets(db, n_datasets)
        out["package_search_in_process"] = search_cpu(db, search_paths())
        t0 = time.perf_counter()
        data = make_csv(n_rows)
        out["csv_generate_seconds"] = round(time.perf_counter() - t0, 1)
        out["load"], uid, table = load_resource(db, data)
        del data
        db.dispose()

        pairs = filter_pairs()
        spaths = search_paths()
        dpaths = datastore_paths(uid, pairs)
        with our_server(url, workdir, 1) as server:
            sample = [_get_json(server.port, p)["result"] for p in spaths[:20]]
            out["package_search"] = {
                "query": spaths[1],
                "mean_count_first_20": round(sum(r["count"] for r in sample) / len(sample), 1),
                "facets_answered": sorted(sample[0]["search_facets"]),
                **measure(server.port, spaths, seconds, workdir),
            }
            out["dcat_catalog_ttl"] = {
                "default_page": first_byte(server.port, "/catalog.ttl", 2 if quick else 5) or "no /catalog.ttl",
                # ~6 s per 1,000 datasets on the shared machine: twice is what the run can afford.
                "all": first_byte(server.port, f"/catalog.ttl?page_size={n_datasets}", 1 if quick else 2),
            }
        # A fresh process for datastore_search, as Datasette gets: nothing the searches above left behind.
        with our_server(url, workdir, 1) as server:
            sample = [_get_json(server.port, p)["result"] for p in dpaths[:20]]
            ours = measure(server.port, dpaths, seconds, workdir)
            ours["rows_per_response_first_20"] = sum(len(r["records"]) for r in sample) / len(sample)
            ours["mean_total_first_20"] = sum(r["total"] for r in sample) / len(sample)
        with datasette_server(sqlite_file, workdir, 1) as server:
            tpaths = datasette_paths(sqlite_file.stem, table, pairs)
            sample = [_get_json(server.port, p) for p in tpaths[:20]]
            theirs = measure(server.port, tpaths, seconds, workdir)
            suggesting = measure(server.port, datasette_paths(sqlite_file.stem, table, pairs, ""), seconds, workdir)
            theirs["rows_per_response_first_20"] = sum(len(r["rows"]) for r in sample) / len(sample)
            theirs["mean_total_first_20"] = sum(r.get("filtered_table_rows_count") or 0 for r in sample) / len(sample)
        for m in (ours, theirs):
            for c in CONCURRENCY:
                level = m[f"c{c}"]
                level["rows_per_second"] = round(level["requests_per_second"] * m["rows_per_response_first_20"])
        out["datastore_search"] = {
            "query": dpaths[0],
            "datasette_query": datasette_paths(sqlite_file.stem, table, pairs[:1])[0],
            "datasette": datasette,
            "smartcity": ours,
            "datasette_same_file": theirs,
            "datasette_same_file_default_json": suggesting,
            "ratio": {
                f"c{c}": round(ours[f"c{c}"]["requests_per_second"] / theirs[f"c{c}"]["requests_per_second"], 2)
                for c in CONCURRENCY
            },
        }
        out["load_average_at_end"] = os.getloadavg()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(workdir, ignore_errors=True)
    return out


if __name__ == "__main__":
    print(json.dumps(run(os.environ.get("BENCH_QUICK") == "1"), indent=2, ensure_ascii=False))
