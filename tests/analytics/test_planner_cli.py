"""`smartcity analytics plan-routes`: the three outputs from imported demand, or a named refusal and no files."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import gtfs_kit
import pytest
from click.testing import CliRunner

from smartcity.cli import main


@pytest.fixture(scope="module")
def night_data(tmp_path_factory):
    """A var folder with a synthetic late-night demand set, and a stop list on a grid over the city."""
    from smartcity.settings import get_settings

    var = tmp_path_factory.mktemp("var")
    env = {"SMARTCITY_VAR_DIR": str(var), "SMARTCITY_DATABASE_URL": f"sqlite:///{var / 'unused.db'}"}
    get_settings.cache_clear()
    out = CliRunner().invoke(main, ["analytics", "synthesize", "--rows", "60000", "--days", "1"], env=env)
    get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    stops = var / "stops.csv"
    lines = ["id,name,lat,lon"] + [
        f"{i:05d},정류소 {i},{37.45 + (i // 50) * 0.0045:.6f},{126.82 + (i % 50) * 0.0068:.6f}" for i in range(2500)
    ]
    stops.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return env, stops


@pytest.fixture
def run(night_data, request):
    from smartcity.settings import get_settings

    env, _ = night_data
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)  # the next test reads its own environment

    def invoke(*args: str, env_extra: dict | None = None):
        return CliRunner().invoke(main, ["analytics", "plan-routes", *args], env={**env, **(env_extra or {})})

    return invoke


@pytest.fixture
def plan_against(run, night_data, tmp_path):
    """Plans three routes (fleet 20) against a baseline of the given routes, one `N26: 00100 …` line each, into
    a folder of the test's: the folder, once the command has succeeded."""
    _, stops = night_data

    def plan(*routes: str):
        baseline = tmp_path / "baseline.txt"
        baseline.write_text("".join(f"{line}\n" for line in routes), encoding="utf-8")
        out = tmp_path / "out"
        args = ["--routes", "3", "--max-km", "15", "--headway", "40", "--fleet", "20", "--seconds", "2"]
        result = run(*args, "--stops", str(stops), "--baseline", str(baseline), "--out", str(out))
        assert result.exit_code == 0, result.output
        return out

    return plan


def test_plan_routes_writes_routes_comparison_and_gtfs(plan_against):
    out = plan_against("N26: 00100 00101 00102 00103", "N37: 01200 01250 01300")
    routes = json.loads((out / "routes.geojson").read_text(encoding="utf-8"))
    lines = [f for f in routes["features"] if f["properties"]["kind"] == "route"]
    assert 1 <= len(lines) <= 3
    assert sum(f["properties"]["buses"] for f in lines) <= 20
    assert {f["properties"]["route"] for f in routes["features"] if f["properties"]["kind"] == "baseline"} == {
        "N26",
        "N37",
    }
    table = list(csv.DictReader(io.StringIO((out / "comparison.csv").read_text(encoding="utf-8"))))
    assert [r["network"] for r in table] == ["planned", "baseline"]
    assert int(table[1]["stops"]) == 7 and int(table[0]["buses"]) == sum(f["properties"]["buses"] for f in lines)
    assert float(table[0]["demand_covered"]) > float(table[1]["demand_covered"])
    feed = gtfs_kit.read_feed(out / "gtfs.zip", dist_units="km")
    assert sorted(feed.routes["route_id"]) == sorted(f["properties"]["route"] for f in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--routes", "9", "--fleet", "5"], "a fleet of 5 buses cannot run 9 routes"),
        (["--routes", "2", "--fleet", "10", "--headway", "60"], "between 30 and 50 minutes, not 60"),
        (["--routes", "2", "--fleet", "10", "--max-round-trip", "8"], "leaves no time to drive"),
    ],
)
def test_impossible_constraints_are_named_and_nothing_is_written(run, night_data, tmp_path, args, message):
    _, stops = night_data
    out = tmp_path / "out"
    result = run(*args, "--stops", str(stops), "--out", str(out))
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists() or not any(out.iterdir())


def test_no_late_night_demand_is_named(run, night_data, tmp_path):
    _, stops = night_data
    empty = tmp_path / "var"
    empty.mkdir()
    out = tmp_path / "out"
    result = run("--fleet", "20", "--stops", str(stops), "--out", str(out), env_extra={"SMARTCITY_VAR_DIR": str(empty)})
    assert result.exit_code == 2
    assert "no demand in hours 0–5" in result.output
    assert not out.exists() or not any(out.iterdir())


def test_stops_outside_the_city_are_named(run, night_data, tmp_path):
    _, stops = night_data
    listed = tmp_path / "stops.csv"
    listed.write_text(stops.read_text(encoding="utf-8") + "B1,부산역,35.1151,129.0414\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run("--fleet", "20", "--stops", str(listed), "--out", str(out))
    assert result.exit_code == 2
    assert "1 stops are outside the city: B1" in result.output
    assert not out.exists() or not any(out.iterdir())


def test_outputs_already_there_stay_whole_when_a_plan_is_refused(run, night_data, tmp_path):
    _, stops = night_data
    out = tmp_path / "out"
    ok = run("--routes", "2", "--fleet", "10", "--seconds", "1", "--stops", str(stops), "--out", str(out))
    assert ok.exit_code == 0, ok.output
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    refused = run("--routes", "12", "--fleet", "10", "--stops", str(stops), "--out", str(out))
    assert refused.exit_code == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with zipfile.ZipFile(out / "gtfs.zip") as zf:
        assert "frequencies.txt" in zf.namelist()


def test_the_routes_come_as_typed_parquet_read_back_by_pyarrow_and_duckdb(plan_against):
    """Issue 17, session 24: routes.parquet, a row per route stop (planned and baseline), the same routes, stops
    and figures as routes.geojson, in typed columns."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = plan_against("N26: 00100 00101 00102 00103")
    table = pq.read_table(out / "routes.parquet")
    types = {f.name: f.type for f in table.schema}
    assert types["stop_order"] == pa.int32() and types["buses"] == pa.int32() and types["headway_min"] == pa.int32()
    assert types["lat"] == pa.float64() and types["stop_demand"] == pa.float64() and types["route"] == pa.string()

    geo = json.loads((out / "routes.geojson").read_text(encoding="utf-8"))["features"]
    stops_geo = sorted(
        (f["properties"]["route"], f["properties"]["order"], f["properties"]["id"], f["properties"]["demand"])
        for f in geo
        if f["properties"]["kind"] == "stop"
    )
    planned = table.filter(pa.compute.equal(table["network"], "planned")).to_pylist()
    assert sorted((r["route"], r["stop_order"], r["stop_id"], r["stop_demand"]) for r in planned) == stops_geo
    lines = {f["properties"]["route"]: f["properties"] for f in geo if f["properties"]["kind"] == "route"}
    for r in planned:
        line = lines[r["route"]]
        assert (r["route_km"], r["buses"], r["route_demand"], r["riders"], r["headway_min"]) == (
            line["km"],
            line["buses"],
            line["demand"],
            line["riders"],
            40,
        )

    # DuckDB reads it as a table of its own types: the baseline's four stops in order, without a served demand.
    with duckdb.connect() as con:
        base = con.execute(
            "SELECT stop_id, stop_order, stop_demand FROM read_parquet(?) "
            "WHERE network = 'baseline' ORDER BY stop_order",
            [str(out / "routes.parquet")],
        ).fetchall()
        described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(out / "routes.parquet")]).fetchall()
        kinds = {row[0]: row[1] for row in described}
    assert base == [("00100", 1, None), ("00101", 2, None), ("00102", 3, None), ("00103", 4, None)]
    assert kinds["stop_order"] == "INTEGER" and kinds["route_km"] == "DOUBLE"


def test_no_parquet_when_k_suppresses_every_cell(run, night_data, tmp_path):
    """k applies to the planner's input, hence to every file it writes: with every cell-hour under k, the plan
    is refused as having no late-night demand and no routes.parquet (nor any other file) is written."""
    import pyarrow.parquet as pq

    _, stops = night_data
    out = tmp_path / "out"
    args = ["--routes", "2", "--max-km", "15", "--headway", "40", "--fleet", "20", "--seconds", "2"]
    ok = run(*args, "--stops", str(stops), "--out", str(out))
    assert ok.exit_code == 0 and (out / "routes.parquet").exists(), ok.output
    assert sum(r["stop_demand"] for r in pq.read_table(out / "routes.parquet").to_pylist()) > 0
    from smartcity.settings import get_settings

    get_settings.cache_clear()  # the next run reads its own environment
    hidden = tmp_path / "hidden"
    refused = run(
        *args, "--stops", str(stops), "--out", str(hidden), env_extra={"SMARTCITY_ANALYTICS_K_ANONYMITY": "1000000"}
    )
    assert refused.exit_code != 0 and "demand" in refused.output, refused.output
    assert not (hidden / "routes.parquet").exists()
