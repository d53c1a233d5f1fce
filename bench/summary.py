"""Print the benchmark results under bench/results/ as the Markdown table the README shows.

.venv/bin/python -m bench.summary           print it
.venv/bin/python -m bench.summary --readme  rewrite the README between its bench markers
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def rows() -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    if geo := _load("geo"):
        for source, r in geo["results"].items():
            out.append(
                (
                    f"point → district lookups ({source})",
                    f"{r['single_lookups_per_second']:,}/s one by one; {r['vectorised_lookups_per_second']:,}/s "
                    "vectorised",
                    "fast (spatial index)",
                )
            )
    if nearest := _load("assets_nearest"):
        r = nearest["results"]
        out.append(
            (
                f"nearest 5 cameras among {r['cameras']:,}",
                f"p50 {r['query_ms_p50']} ms, p99 {r['query_ms_p99']} ms",
                "< 1 ms per query",
            )
        )
    if open311 := _load("reports_open311"):
        r = open311["results"]
        for key, label in (
            ("smartcity_sqlite_1w", "smartcity, SQLite, 1 worker"),
            ("smartcity_sqlite_2w", "smartcity, SQLite, 2 workers"),
            ("smartcity_postgres_1w", "smartcity, PostgreSQL, 1 worker"),
            ("smartcity_postgres_2w", "smartcity, PostgreSQL, 2 workers"),
            ("datasette_sqlite_1w", "Datasette, same SQLite file, 1 process"),
            ("datasette_sqlite_2w", "Datasette, same SQLite file, 2 processes"),
        ):
            g = r.get("get", {}).get(key)
            if not g:
                continue
            levels = [(c, g[c]) for c in ("c1", "c2", "c8") if c in g]
            result = "; ".join(
                f"{c[1:]} conn: {m['requests_per_second']} req/s, p50 {m['p50_ms']} ms, p99 {m['p99_ms']} ms"
                for c, m in levels
            )
            out.append(
                (
                    f"Open311 GET requests.json, {r['reports']:,} reports, status + 1 km area, page_size "
                    f"{r['page_size']}: {label}",
                    result,
                    "≥ 2× Datasette req/s; p99 < 50 ms",
                )
            )
        for key, label in (("post_sqlite_1w", "SQLite"), ("post_postgres_1w", "PostgreSQL")):
            if p := r.get(key):
                out.append((f"Open311 POST requests.json ({label})", f"{p['accepted_per_second']} reports/s", "—"))
    if intake := _load("safety_intake"):
        r = intake["results"]
        o = r.get("osmand_http", {})
        if o:
            ours = o["osmand"].get("accepted_per_second", o["osmand"]["requests_per_second"])
            bare = o["bare_asgi"].get("accepted_per_second", o["bare_asgi"]["requests_per_second"])
            out.append(
                (
                    f"OsmAnd positions over HTTP ({r['devices']:,} devices), stored before each 200",
                    f"{ours:,}/s vs bare ASGI {bare:,}/s (ratio {o['ratio']})"
                    + (f" (machine load {r['load_average'][0]:.1f} on 2 cores)" if r.get("load_average") else ""),
                    "ratio ≥ 0.5",
                )
            )
        if b := r.get("batch"):
            out.append(("positions through the batch endpoint", f"{b['positions_per_second']:,}/s", "≥ 50,000/s"))
        if raw := r.get("raw_store"):
            out.append(
                (
                    "raw-store ceiling, SQLite: the batch case's rows through the batch store alone (same run)",
                    f"{raw['rows_per_second']:,} rows/s into the keyed table"
                    + (
                        f", {staged['rows_per_second']:,} into the staging table"
                        if (staged := r.get("raw_store_staged"))
                        else ""
                    )
                    + f" (the endpoint: {r['batch'].get('share_of_raw_store')} of the better)",
                    "—",
                )
            )
        if pg := r.get("postgresql_batch"):
            w1, w2 = pg["writers_1"]["positions_per_second"], pg["writers_2"]["positions_per_second"]
            out.append(
                (
                    f"batch endpoint on PostgreSQL ({pg['devices']:,} devices), 1 and 2 writer processes",
                    f"{w1:,}/s and {w2:,}/s (×{pg['speed_up_with_2_writers']}); raw store "
                    f"{pg['raw_store']['rows_per_second']:,} rows/s",
                    "scales with writers",
                )
            )
        if m := r.get("mqtt"):
            out.append(
                (
                    "positions through MQTT (stored)",
                    f"{m['stored_per_second']:,}/s vs bare subscriber {m['bare_subscriber_per_second']:,}/s "
                    f"(ratio {m['ratio']})",
                    "ratio ≥ 0.5",
                )
            )
        if s := r.get("sos_latency_ms"):
            out.append(
                (
                    "SOS → control-room console, during the OsmAnd load",
                    f"p50 {s['p50']} ms, p99 {s['p99']} ms",
                    "p99 < 100 ms",
                )
            )
    if engine := _load("safety_engine"):
        r = engine["results"]
        for key, label in (("batch_1000", "batches of 1,000"), ("batch_5000", "batches of 5,000")):
            if e := r.get(key):
                out.append(
                    (
                        f"safety engine alone (rules, no store), {label} ({r['devices']:,} devices, 3 zones each)",
                        f"{e['positions_per_second']:,} positions/s, {e['cpu_us_per_position']} µs CPU each",
                        "≥ 200,000 positions/s (≤ 5 µs each)",
                    )
                )
    if opendata := _load("opendata"):
        out += _opendata_rows(opendata["results"])
    if participation := _load("participation"):
        out += _participation_rows(participation["results"])
    if ngsi := _load("sensing_ngsi"):
        out += _sensing_ngsi_rows(ngsi["results"])
    if sensing := _load("sensing"):
        out += _sensing_rows(sensing["results"])
    if analytics := _load("analytics"):
        out += _analytics_rows(analytics["results"])
    if planner := _load("route_planner"):
        out += _planner_rows(planner["results"])
    return out


def _sensing_rows(r: dict) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for store, level in r.items():
        if m := level.get("mqtt"):
            out.append(
                (
                    f"sensor readings through MQTT ({m['sensors']} sensors × {m['readings_per_message']} quantities), "
                    f"{store}",
                    f"{m['readings_per_second']:,} readings/s ({m['stored']:,} stored, {m['refused']} refused)",
                    f"≥ {m['goal_per_second']:,}/s",
                )
            )
        if t := level.get("temporal"):
            largest = t["by_table_size"][-1]
            out.append(
                (
                    f"temporal query, one sensor and quantity, 30 days at 2 min ({largest['points_per_answer'][0]:,} "
                    f"points), {store}",
                    f"p50 {largest['p50_ms']} ms, p99 {largest['p99_ms']} ms with a year of data for "
                    f"{largest['sensors_with_a_year']} sensors ({largest['rows']:,} rows; a key range scan)",
                    f"p99 < {t['goal_p99_ms']} ms (a year for all 850)",
                )
            )
        if y := level.get("temporal_year"):
            st, cold, warm = y["store"], y["raw_30_days_cold"], y["raw_30_days_warm"]
            load = f"machine load {y['load_average_at_start'][0]}–{y['load_average_at_end'][0]} on 2 cores"
            year = f"a year for all {st['sensors']} sensors ({st['readings']:,} rows, {y['store_bytes'] / 1e9:.1f} GB)"
            out.append(
                (
                    f"temporal query, one sensor and quantity, 30 days at 2 min ({cold['points_per_answer'][0]:,} "
                    f"points, rollup.series), {year}, {store}",
                    f"cold cache p50 {cold['p50_ms']} ms, p99 {cold['p99_ms']} ms; warm p50 {warm['p50_ms']} ms, "
                    f"p99 {warm['p99_ms']} ms; CPU p99 {warm['cpu_p99_ms']} ms ({load})",
                    f"p99 < {y['goal_p99_ms']} ms",
                )
            )
            daily, hourly = y["daily_30_days_cold"], y["hourly_30_days_cold"]
            ngsi, page = y["ngsi_hourly_aggregates_30_days_http"], y["air_sensor_page_http"]
            out.append(
                (
                    f"30 days of roll-ups at that size, {store}: daily (the air page's plot), hourly (NGSI-LD "
                    "aggregatedValues PT1H)",
                    f"cold: daily p99 {daily['p99_ms']} ms, hourly p99 {hourly['p99_ms']} ms; over HTTP in-process: "
                    f"NGSI-LD hourly avg/min/max p50 {ngsi['p50_ms']} ms, p99 {ngsi['p99_ms']} ms; the air sensor "
                    f"page p50 {page['p50_ms']} ms, p99 {page['p99_ms']} ms",
                    "—",
                )
            )
    return out


def _analytics_rows(r: dict) -> list[tuple[str, str, str]]:
    d, c, sp = r["duckdb_aggregate"], r["cell_assignment_and_aggregation"], r["spark_local_vs_duckdb"]
    return [
        (
            f"cell × hour aggregation on DuckDB, {r['rows']:,} synthetic records with cell ids (measured whole)",
            f"{d['rows_per_s']:,} rows/s ({d['seconds']} s at load {d['load'][0]:.1f}; {d['cpu_s']} CPU-s)",
            "≥ 50 M rows/s; 300 M < 10 s",
        ),
        (
            "the same from lat/lon: H3 cell assignment (lattice) streamed into the aggregation",
            f"{c['seconds']} s at load {c['load'][0]:.1f} ({c['rows_per_s']:,} rows/s; {c['cpu_s']} CPU-s)",
            "300 M < 60 s",
        ),
        (
            f"the same aggregation on Spark local[2], {sp['rows']:,} records",
            f"{sp['spark_s']} s (first run {sp['spark_first_run_s']} s) vs DuckDB {sp['duckdb_s']} s: "
            f"×{sp['spark_over_duckdb']}",
            "a ratio",
        ),
    ]


def _planner_rows(r: dict) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for key, level in r.items():
        if not isinstance(level, dict) or "seconds_total" not in level:
            continue
        c = level["constraints"]
        out.append(
            (
                f"night route planner, {c['routes']} routes over the hottest {level['hot_cells']:,} cells "
                f"({key.replace('_', ' ')})",
                f"{level['seconds_total']} s; {level['buses']} buses, {level['km']} km; demand served ×"
                f"{level['served_vs_greedy']} of greedy",
                f"< {level['goal_seconds']} s",
            )
        )
    return out


def _sensing_ngsi_rows(r: dict) -> list[tuple[str, str, str]]:
    load = f" (machine load {r['load_average_1min']})" if "load_average_1min" in r else ""
    out = [
        (
            f"NGSI-LD batch upsert, {r['entities']:,} entities in batches of {r['batch_size']:,}, SQLite, in-process",
            f"{r['upsert_new_entities_per_second']:,}/s new, {r['upsert_replace_entities_per_second']:,}/s replace; "
            f"{r['upsert_new_entities_per_cpu_second']:,} per CPU second{load}",
            f"≥ {r['upsert_goal_per_second']:,}/s (10× Stellio)",
        ),
        (
            f"NGSI-LD near query (maxDistance {r['near_max_distance_m']} m) over {r['entities']:,} entities",
            f"p50 {r['near_ms_p50']} ms, p99 {r['near_ms_p99']} ms (CPU p99 {r['near_cpu_ms_p99']} ms; the store's "
            f"query alone p99 {r['near_query_only_ms_p99']} ms){load}",
            f"p99 < {r['near_goal_ms_p99']:g} ms",
        ),
    ]
    if "air_quality_entities_per_second" in r:
        out.append(
            (
                "NGSI-LD upsert of AirQualityObserved into the readings tables "
                f"({r['air_quality_readings_stored']:,} readings)",
                f"{r['air_quality_entities_per_second']:,} entities/s, {r['air_quality_readings_per_second']:,} "
                "readings/s",
                "—",
            )
        )
    return out


def _participation_rows(r: dict) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    load = r.get("load_average_at_cast") or r.get("load_average_at_end") or ["?"]
    for key, level in r.get("cast_http_sqlite_1w", {}).items():
        out.append(
            (
                f"votes cast over HTTP, {r['citizens']:,} verified citizens, SQLite, 1 worker, {key[1:]} conn "
                f"(machine load {load[0]} on {r.get('cpus', 2)} cores)",
                f"{level['votes_per_second']:,} votes/s, p50 {level['p50_ms']} ms, p99 {level['p99_ms']} ms; server "
                f"CPU {level.get('server_cpu_ms_per_vote', '?')} ms per vote",
                "≥ 1,000 votes/s, p99 < 50 ms",
            )
        )
    if "tally_s" in r:
        out.append(
            (
                f"vote tally of {r['ballots']:,} ballots by {r['districts']} districts and {r['age_bands']} age bands",
                f"{r['tally_s']} s ({r.get('tally_cpu_s', '?')} s CPU)",
                "< 2 s",
            )
        )
    if "verify_chain_s" in r:
        cpu, load = r.get("verify_chain_cpu_s", "?"), r["load_average_at_end"][0]
        took = f"{r['verify_chain_s']} s ({cpu} s CPU; machine load {load})"
        out.append((f"verify a vote's hash chain of {r['ballots']:,} ballots", took, "< 10 s"))
    return out


def _machine_load(level: dict) -> str:
    """The machine's load average while a level was measured (the 2 cores are shared), when the run kept it."""
    load = level.get("load_average")
    return f" (machine load {load[0]})" if load else ""


def _opendata_rows(r: dict) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    if ps := r.get("package_search"):
        out.append(
            (
                f"CKAN package_search over {r['datasets']:,} datasets, a query and 3 facets",
                "; ".join(
                    f"{c[1:]} conn: p50 {ps[c]['p50_ms']} ms, p99 {ps[c]['p99_ms']} ms{_machine_load(ps[c])}"
                    for c in ("c1", "c4")
                    if c in ps
                ),
                "p99 < 20 ms",
            )
        )
    if load := r.get("load"):
        out.append(
            (
                f"loading a CSV of {load['rows']:,} rows ({len(load['columns'])} typed columns), SQLite",
                f"{load['total_seconds']} s wall ({load.get('total_cpu_seconds', '?')} s CPU)",
                "< 20 s",
            )
        )
    if ds := r.get("datastore_search"):
        ours, theirs = ds["smartcity"], ds["datasette_same_file"]
        for c in ("c1", "c4"):
            if c in ours and c in theirs:
                out.append(
                    (
                        f"datastore_search, 2 filters + sort, 100 rows of {r['rows']:,}, {c[1:]} conn "
                        "(beside Datasette, same SQLite file and query)",
                        f"{ours[c]['rows_per_second']:,} rows/s vs {theirs[c]['rows_per_second']:,} rows/s "
                        f"(ratio {ds['ratio'][c]}){_machine_load(ours[c])}",
                        "≥ 2× Datasette",
                    )
                )
    dcat = r.get("dcat_catalog_ttl") or {}
    for key, label in (("default_page", "its first page"), ("all", "all in one answer")):
        if isinstance(m := dcat.get(key), dict):
            out.append(
                (
                    f"DCAT catalogue /catalog.ttl of {r['datasets']:,} datasets, {label}",
                    f"first byte {m['ttfb_ms_median']} ms, all {m['total_ms_median']} ms (medians)",
                    "first byte < 200 ms",
                )
            )
    return out


def markdown() -> str:
    lines = ["| Benchmark | Result (2 cores) | Goal |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows()]
    quick = [p.stem for p in sorted(RESULTS.glob("*.json")) if json.loads(p.read_text()).get("quick")]
    if quick:
        lines.append("")
        lines.append(f"(Quick, reduced-size runs: {', '.join(quick)}.)")
    return "\n".join(lines)


def write_readme(path: Path = Path(__file__).parents[1] / "README.md") -> None:
    text = path.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{start}\n{markdown()}\n{end}{tail}")


if __name__ == "__main__":
    import sys

    if "--readme" in sys.argv:
        write_readme()
    else:
        print(markdown())
