"""The S-DoT adapter: the sensor list as assets of kind `sensor`, and raw exports (scaled values, yyyymmddhi
in Seoul's time) with per-row defects; the real list where ../shared has it (both stores)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from smartcity.cli import main
from smartcity.sensing import service
from smartcity.sensing.models import Reading, Rejection
from smartcity.sensing.quantities import BY_NAME
from tests.conftest import seoul_data
from tests.sensing.conftest import sdot_export

KST = timezone(timedelta(hours=9))


def _minute(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, KST).strftime("%Y%m%d%H%M")


def _readings(db) -> dict[tuple[str, int], float]:
    with db.session() as s:
        return {(q, t): v for q, t, v in s.execute(select(Reading.quantity, Reading.observed_at, Reading.value))}


def test_an_export_is_read_in_its_scaled_units_and_its_bad_rows_reported(db, sensors):
    at = (int(time.time()) - 3600) // 120 * 120
    serial = sensors.serials[0]
    good = {
        "모델명": "SDOT001",
        "시리얼": serial,
        "미세먼지2.5(초미세먼지)": "17",
        "미세먼지10(미세먼지)": "33",
        "기온": "1234",  # (23.4 + 100) × 10
        "상대습도": "56",
        "풍속": "25",  # 2.5 m/s × 10
        "조도": "20500",
        "자외선": "31",  # 3.1 × 10
        "소음": "58",
        "진동(x)": "12",
        "진동(y)": "40",  # the largest axis: 0.40 mm/s × 100
        "진동(z)": "7",
        "측정시간": _minute(at),
    }
    data = sdot_export(
        [
            good,
            {**good, "측정시간": _minute(at + 120), "기온": "", "풍속": ""},  # not measured: no reading
            {**good, "측정시간": "2026-05-01 12:30"},  # line 4: not yyyymmddhi
            {**good, "측정시간": _minute(at + 240), "소음": "loud"},  # line 5
            {**good, "시리얼": ""},  # line 6
            {**good, "시리얼": "V02Q0000000", "측정시간": _minute(at + 360)},  # line 7: unknown sensor
            {**good, "측정시간": _minute(at + 480), "미세먼지10(미세먼지)": "4000"},  # line 8: impossible
        ],
        encoding="cp949",
    )
    result = service.import_readings(db, data)
    stored = _readings(db)
    q = {name: BY_NAME[name].code for name in BY_NAME}
    assert stored[(q["temperature"], at)] == pytest.approx(23.4)
    assert stored[(q["wind"], at)] == pytest.approx(2.5)
    assert stored[(q["uv"], at)] == pytest.approx(3.1)
    assert stored[(q["vibration"], at)] == pytest.approx(0.40)
    assert (stored[(q["pm10"], at)], stored[(q["pm25"], at)], stored[(q["noise"], at)]) == (33, 17, 58)
    assert (q["temperature"], at + 120) not in stored and (q["wind"], at + 120) not in stored
    # Line 2: 9 quantities; line 3: 7; line 8: 8 (its PM10 refused).
    assert result.stored == len(stored) == 9 + 7 + 8
    by_line: dict[int, set[str]] = {}
    for d in result.defects:
        by_line.setdefault(d.line, set()).add(d.reason.split(":")[0].split(" ")[0])
    assert sorted(by_line) == [4, 5, 6, 7, 8]
    assert by_line[7] == {"unknown_sensor"} and by_line[8] == {"out_of_range"}
    with db.session() as s:
        recorded = sorted(r.code for r in s.scalars(select(Rejection)))
    assert recorded == ["out_of_range"] + ["unknown_sensor"] * 9

    again = service.import_readings(db, data)
    assert (again.stored, again.duplicates) == (0, result.stored)


def test_the_commands_report_rows_by_line(db_url, tmp_path, monkeypatch, request):
    from smartcity.settings import get_settings
    from tests import synthetic

    monkeypatch.setenv("SMARTCITY_DATABASE_URL", db_url)
    monkeypatch.setenv("SMARTCITY_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)  # the next test reads its own environment
    planted = synthetic.sdot()
    listing = tmp_path / "sdot_sensors.csv"
    listing.write_bytes(planted.data)
    runner = CliRunner()
    out = runner.invoke(main, ["sensing", "import-sensors", str(listing)])
    assert out.exit_code == 0, out.output
    assert f"{planted.imported} added" in out.output
    for line in planted.skipped:
        assert f"line {line}:" in out.output
    export = tmp_path / "export.csv"
    export.write_bytes(sdot_export([{"시리얼": "V02Q0000000", "측정시간": "x", "소음": "50"}]))
    out = runner.invoke(main, ["sensing", "import-readings", str(export)])
    assert out.exit_code == 0, out.output
    assert "line 2:" in out.output and "yyyymmddhi" in out.output


@pytest.mark.real_data
def test_the_real_sensor_list_registers_every_sensor_inside_the_city(db):
    path = seoul_data("sdot_sensors.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    report = service.import_sensors(db, path.read_bytes())
    assert report.rows == len(lines) - 1
    assert report.created + len(report.skipped) == report.rows
    assert report.created > 800
    with db.session() as s:
        registered = service.sensors(s)
    assert len(registered) == report.created
    assert all(r["district"] for r in registered)
    assert {r["serial"] for r in registered} <= {line.split(",")[0] for line in lines[1:]}
