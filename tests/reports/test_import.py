"""A city moving from another 311 system brings its history, on both stores: `smartcity reports import` with a
column mapping keeps each request's original dates, status and updates, all or nothing per file with the
problems listed by row; Open311 POST keeps a given requested_datetime only for a key issued for importing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from smartcity.cli import main
from smartcity.core.models import AuditEntry
from smartcity.reports.models import Report, ReportUpdate
from smartcity.settings import get_settings
from tests.conftest import make_key
from tests.reports.helpers import CITY_HALL, GANGNAM

V2 = "/open311/v2"
BUSAN = (35.1796, 129.0756)

# Another system's export: its own column names, status words and time formats.
REQUESTS = f"""case_id,type,latitude,longitude,summary,details,state,opened,last_change
A-1,roads-pothole,{CITY_HALL[0]},{CITY_HALL[1]},Pothole by the city hall,"Deep, near the crossing",Closed,\
2024-05-01 09:30:15,2024-05-04T10:00:00+09:00
A-2,cleaning-illegal-dumping,{GANGNAM[0]},{GANGNAM[1]},Rubbish bags,,ACTION_SCHEDULED,2024-06-10T08:00:00Z,
"""
UPDATES = """case,when,state,note
A-1,2024-05-02 11:00,INVESTIGATING,Crew assigned
A-1,2024-05-03 10:00,FIXED,Filled with asphalt
A-2,2024-06-11 09:00,,We will come on Monday
"""
MAP = "case_id=external_id,type=category,latitude=lat,longitude=lon,summary=title,details=description,"
MAP += "state=status,opened=requested_at,last_change=updated_at"
UPDATES_MAP = "case=external_id,when=at,state=status,note=text"


@pytest.fixture
def run(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("SMARTCITY_DATABASE_URL", db_url)
    monkeypatch.setenv("SMARTCITY_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(main, list(args), catch_exceptions=False)
    get_settings.cache_clear()


def files(tmp_path, requests: str = REQUESTS, updates: str = UPDATES):
    (tmp_path / "requests.csv").write_text(requests, encoding="utf-8")
    (tmp_path / "updates.csv").write_text(updates, encoding="utf-8")
    return str(tmp_path / "requests.csv"), str(tmp_path / "updates.csv")


def imported(db, ext: str) -> Report:
    with db.session() as s:
        return s.scalar(select(Report).where(Report.external_id == ext))


def counts(db) -> tuple[int, int]:
    with db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Report, ReportUpdate))


def test_history_keeps_original_dates_statuses_and_updates(run, db, client, tmp_path):
    reqs, ups = files(tmp_path)
    out = run("reports", "import", reqs, "--map", MAP, "--updates", ups, "--updates-map", UPDATES_MAP)
    assert out.exit_code == 0, out.output
    assert "imported 2 requests and 3 updates" in out.output
    first, second = imported(db, "A-1"), imported(db, "A-2")
    assert first.created_at == datetime(2024, 5, 1, 0, 30, 15, tzinfo=UTC)  # 09:30:15 in Seoul
    assert first.updated_at == datetime(2024, 5, 4, 1, 0, tzinfo=UTC)
    assert first.status == "closed" and first.fixed_at == datetime(2024, 5, 3, 1, 0, tzinfo=UTC)
    assert first.title == "Pothole by the city hall" and first.description == "Deep, near the crossing"
    assert second.status == "in_progress" and second.created_at == datetime(2024, 6, 10, 8, 0, tzinfo=UTC)
    assert second.source == "import" and first.district_code != second.district_code

    r = client.get(f"{V2}/requests/{first.id}.json", params={"extensions": "true"}).json()[0]
    assert r["requested_datetime"] == "2024-05-01T09:30:15+09:00" and r["status"] == "closed"
    assert r["updated_datetime"] == "2024-05-04T10:00:00+09:00"
    notes = [(n["datetime"], n["status"], n["description"]) for n in r["notes"]]
    assert notes == [
        ("2024-05-02T11:00:00+09:00", "INVESTIGATING", "Crew assigned"),
        ("2024-05-03T10:00:00+09:00", "FIXED", "Filled with asphalt"),
    ]
    # Found by the search in its own time window, not today's.
    window = {"start_date": "2024-05-01T00:00:00+09:00", "end_date": "2024-05-01T23:59:59+09:00"}
    assert [x["service_request_id"] for x in client.get(f"{V2}/requests.json", params=window).json()] == [str(first.id)]
    with db.session() as s:
        audited = set(s.scalars(select(AuditEntry.object_id).where(AuditEntry.action == "import")))
    assert audited == {str(first.id), str(second.id)}


def test_a_file_with_problems_stores_nothing_and_names_each_row(run, db, tmp_path):
    bad = REQUESTS + (
        f"A-3,roads-pothole,{BUSAN[0]},{BUSAN[1]},Far away,,open,2024-05-01 10:00,\n"
        f"A-4,no-such-thing,{CITY_HALL[0]},{CITY_HALL[1]},What,,open,2024-05-01 10:00,\n"
        f"A-5,roads-pothole,{CITY_HALL[0]},{CITY_HALL[1]},When,,open,yesterday,\n"
        f"A-6,roads-pothole,{CITY_HALL[0]},{CITY_HALL[1]},How,,PENDING_REVIEW,2024-05-01 10:00,\n"
        f"A-1,roads-pothole,{CITY_HALL[0]},{CITY_HALL[1]},Again,,open,2024-05-01 10:00,\n"
    )
    reqs, ups = files(tmp_path, bad, UPDATES + "Z-9,2024-05-02 11:00,,For a request not in the file\n")
    before = counts(db)
    out = run("reports", "import", reqs, "--map", MAP, "--updates", ups, "--updates-map", UPDATES_MAP)
    assert out.exit_code == 2
    assert "row 3: lat/lon:" in out.output and "not inside the city" in out.output
    assert "row 4: category: unknown category 'no-such-thing'" in out.output
    assert "row 5: requested_at:" in out.output
    assert "row 6: status: unknown status 'PENDING_REVIEW'" in out.output
    assert "row 7: external_id: 'A-1' appears twice" in out.output
    assert "updates row 4: external_id:" in out.output
    assert counts(db) == before
    assert imported(db, "A-2") is None


def test_the_same_file_twice_is_refused_the_second_time(run, db, tmp_path):
    reqs, ups = files(tmp_path)
    assert run("reports", "import", reqs, "--map", MAP).exit_code == 0
    before = counts(db)
    again = run("reports", "import", reqs, "--map", MAP)
    assert again.exit_code == 2 and "'A-1' was imported before" in again.output
    assert counts(db) == before


def test_a_bad_mapping_is_refused_before_reading_rows(run, db, tmp_path):
    reqs, _ = files(tmp_path)
    out = run("reports", "import", reqs, "--map", "case_id=identifier")
    assert out.exit_code == 2 and "bad mapping" in out.output
    out = run("reports", "import", reqs, "--map", "case_id=external_id")
    assert out.exit_code == 2 and "no column for category" in out.output


# --- Open311 POST: requested_datetime with an import key only ----------------------------------------------


def post(client, key, **extra):
    data = {
        "api_key": key,
        "service_code": "roads-pothole",
        "attribute[size]": "large",
        "description": "Old pothole",
        "lat": str(CITY_HALL[0]),
        "long": str(CITY_HALL[1]),
        **extra,
    }
    return client.post(f"{V2}/requests.json", data=data)


def test_open311_keeps_requested_datetime_only_for_an_import_key(client, db):
    importer, ordinary = make_key(db, scope="open311:import"), make_key(db, scope="open311")
    kept = post(client, importer, requested_datetime="2023-11-02T08:15:00+09:00")
    assert kept.status_code == 201, kept.text
    rid = kept.json()[0]["service_request_id"]
    shown = client.get(f"{V2}/requests/{rid}.json").json()[0]
    assert shown["requested_datetime"] == "2023-11-02T08:15:00+09:00"
    assert "requested_datetime" not in kept.json()[0]["service_notice"]

    ignored = post(client, ordinary, requested_datetime="2023-11-02T08:15:00+09:00")
    assert ignored.status_code == 201
    assert "requested_datetime" in ignored.json()[0]["service_notice"]
    rid = ignored.json()[0]["service_request_id"]
    with db.session() as s:
        created = s.get(Report, int(rid)).created_at
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=5)


def test_an_import_key_cannot_file_from_the_future(client, db):
    importer = make_key(db, scope="open311:import")
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    r = post(client, importer, requested_datetime=future)
    assert r.status_code == 400 and "future" in r.json()[0]["description"]
