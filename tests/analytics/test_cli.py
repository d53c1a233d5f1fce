"""`smartcity analytics import`, `synthesize` and `cells` through the command line (click's runner, the real
`smartcity` group): files written under the var folder given in the environment, defects printed by line, a
file with wrong columns refused with exit status 2 and nothing written."""

from __future__ import annotations

import pyarrow.dataset as ds
import pytest
from click.testing import CliRunner

from smartcity.analytics.cells import exact_cell_of
from smartcity.cli import main
from tests.analytics.conftest import csv_bytes

CITY_HALL = (37.5665, 126.9780)


@pytest.fixture
def invoke(tmp_path):
    from smartcity.settings import get_settings

    env = {"SMARTCITY_VAR_DIR": str(tmp_path), "SMARTCITY_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}"}

    def run(*args: str):
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(main, ["analytics", *args], env=env)
        finally:
            get_settings.cache_clear()

    return run


def _rows(folder):
    files = list(folder.glob("day=*/*.parquet"))
    return ds.dataset(files, format="parquet").to_table() if files else None


def test_import_then_cells(invoke, tmp_path):
    night = [{"time": "2026-03-04T01:20:00+09:00", "lat": CITY_HALL[0], "lon": CITY_HALL[1], "count": 1}] * 12
    night.append({"time": "2026-03-04T01:30:00+09:00", "lat": 35.1796, "lon": 129.0756, "count": 1})  # Busan
    source = tmp_path / "phone.csv"
    source.write_bytes(csv_bytes(night))

    done = invoke("import", "phone", str(source))
    assert done.exit_code == 0, done.output
    assert "phone: 12 rows kept over 1 day(s), 1 left out" in done.stdout
    assert "1 × lat/lon: outside the city: line(s) 14" in done.stdout
    assert _rows(tmp_path / "analytics" / "phone").num_rows == 12

    cells = invoke("cells", "--hours", "1")
    assert cells.exit_code == 0, cells.output
    lines = cells.stdout.strip().splitlines()
    cell = int(exact_cell_of([CITY_HALL[0]], [CITY_HALL[1]], 8)[0])
    assert lines[0] == "cell,hour,day_type,count"
    assert lines[1:] == [f"{cell:x},1,weekday,12"]


def test_wrong_columns_exit_2_and_write_nothing(invoke, tmp_path):
    source = tmp_path / "bad.csv"
    source.write_bytes(csv_bytes([{"timestamp": "2026-03-04T01:20:00+09:00", "latitude": 37.5, "n": 1}]))
    done = invoke("import", "phone", str(source))
    assert done.exit_code == 2
    assert "not understood: timestamp, latitude, n" in done.stderr
    assert not list((tmp_path / "analytics").glob("**/*.parquet"))


def test_synthesize_writes_the_rows_by_day(invoke, tmp_path):
    done = invoke("synthesize", "--rows", "5000", "--days", "2", "--start", "2026-03-06")
    assert done.exit_code == 0, done.output
    table = _rows(tmp_path / "analytics" / "phone")
    assert table.num_rows == 5000
    assert sorted(p.name for p in (tmp_path / "analytics" / "phone").glob("day=*")) == [
        "day=2026-03-06",
        "day=2026-03-07",
    ]
    assert set(table.column("weekend").to_pylist()) == {False, True}  # a Friday and a Saturday


def test_a_file_wholly_outside_the_city_exits_2_and_writes_nothing(invoke, tmp_path):
    busan = [{"time": "2026-03-04T01:20:00+09:00", "lat": 35.1796, "lon": 129.0756, "count": 1}] * 2
    source = tmp_path / "busan.csv"
    source.write_bytes(csv_bytes(busan))
    done = invoke("import", "phone", str(source))
    assert done.exit_code == 2
    assert "none of its 2 rows could be kept (2 × lat/lon: outside the city (line 2, 3))" in done.stderr
    assert not list((tmp_path / "analytics").glob("**/*.parquet"))
