"""Safety incidents are about people: in the day-by-day trends a district-day count of a kind under the analytics
k threshold is withheld on the page and in every download (CSV, Parquet, GeoJSON), left out of every sum, and the
decomposition shows nothing that depends on it. Reports (public open data) are not withheld. Both stores."""

from __future__ import annotations

import csv
import io
import re
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone

import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from smartcity.app import create_app
from smartcity.safety import service as safety
from smartcity.safety.models import Incident
from tests.conftest import make_settings
from tests.reports.helpers import CITY_HALL, file_report

KST = timezone(timedelta(hours=9))
FIRST = date(2026, 3, 2)  # a Monday
DAYS = 14
JUNG, JONGNO, GANGNAM = "11020", "11010", "11230"
# Jung-gu: 12 SOS a day, but 2 on day 4 and 1 on day 9, and one danger incident beside day 6's twelve SOS;
# Jongno-gu: 11 SOS on day 2; Gangnam-gu: 2 SOS on day 11. With k = 10, the 1s and 2s are withheld.
SOS_JUNG = {t: 12 for t in range(DAYS)} | {4: 2, 9: 1}


def _day(t: int) -> str:
    return (FIRST + timedelta(days=t)).isoformat()


def _add(db, district: str, kind: str, t: int, n: int) -> None:
    at = datetime.combine(FIRST + timedelta(days=t), datetime.min.time(), KST) + timedelta(hours=10)
    with db.session() as s:
        person = safety.add_person(s, "child", "서연")
        s.add_all(Incident(kind=kind, person_id=person.id, district_code=district, opened_at=at) for _ in range(n))


def _incidents(db) -> None:
    for t, n in SOS_JUNG.items():
        _add(db, JUNG, "sos", t, n)
    _add(db, JUNG, "danger", 6, 1)
    _add(db, JONGNO, "sos", 2, 11)
    _add(db, GANGNAM, "sos", 11, 2)


@contextmanager
def _client(db, db_url, tmp_path, k: int):
    """A client of an app on `db` whose analytics k threshold is `k`."""
    with TestClient(create_app(make_settings(db_url, tmp_path, run_jobs=False, analytics_k_anonymity=k), db)) as c:
        yield c


def _csv(client, headers, query: str) -> dict[str, dict]:
    got = client.get(f"/analytics/trends/days.csv?{query}", headers=headers)
    assert got.status_code == 200, got.text
    return {r["day"]: r for r in csv.DictReader(io.StringIO(got.text))}


def _parquet(client, headers, query: str) -> dict:
    got = client.get(f"/analytics/trends/days.parquet?{query}", headers=headers)
    assert got.status_code == 200, got.text
    return {r["day"].isoformat(): r for r in pq.read_table(io.BytesIO(got.content)).to_pylist()}


def _geojson(client, headers, query: str = "") -> dict:
    got = client.get(f"/analytics/trends/days.geojson?source=incidents{query}", headers=headers)
    assert got.status_code == 200, got.text
    return got.json()


def test_counts_under_k_are_withheld_from_the_page_and_every_download(db, db_url, tmp_path, analyst):
    _incidents(db)
    with _client(db, db_url, tmp_path, k=10) as client:
        jung = _csv(client, analyst, f"source=incidents&district={JUNG}")
        for t in (4, 9):
            row = jung[_day(t)]
            assert (row["value"], row["residual"], row["suppressed"]) == ("", "", "True"), row
        # Day 6: the twelve SOS are published, the lone danger incident is not added to them.
        assert (jung[_day(6)]["value"], jung[_day(6)]["suppressed"]) == ("12.0", "True")
        assert {jung[_day(t)]["value"] for t in (0, 3, 5, 13)} == {"12.0"}
        assert jung[_day(0)]["suppressed"] == "False"

        everywhere = _csv(client, analyst, "source=incidents")
        assert everywhere[_day(2)]["value"] == "23.0"  # Jung-gu's 12 and Jongno-gu's 11, both over k
        assert (everywhere[_day(11)]["value"], everywhere[_day(11)]["suppressed"]) == ("12.0", "True")
        assert everywhere[_day(4)]["value"] == "" and everywhere[_day(9)]["value"] == ""
        gangnam = _csv(client, analyst, f"source=incidents&district={GANGNAM}")
        assert [(r["value"], r["suppressed"]) for r in gangnam.values()] == [("", "True")]
        danger = _csv(client, analyst, "source=incidents&category=danger")
        assert [(r["value"], r["suppressed"]) for r in danger.values()] == [("", "True")]

        table = _parquet(client, analyst, f"source=incidents&district={JUNG}")
        assert table[_day(9)]["value"] is None and table[_day(9)]["suppressed"] is True
        assert table[_day(4)]["residual"] is None and table[_day(6)]["value"] == 12

        shapes = _geojson(client, analyst)
        assert shapes["k_anonymity"] == 10
        features = {f["properties"]["district"]: f["properties"] for f in shapes["features"]}
        assert features[JUNG][_day(4)] is None and features[JUNG][_day(9)] is None
        assert features[JUNG]["total"] == 12 * 12  # the twelve published days; the withheld ones left out
        assert features[JUNG]["suppressed_days"] == 3
        assert features[GANGNAM][_day(11)] is None and features[GANGNAM]["total"] == 0
        assert features[GANGNAM]["suppressed_days"] == 1
        assert features[JONGNO][_day(2)] == 11 and features[JONGNO]["suppressed_days"] == 0

        page = client.get(f"/analytics/trends?source=incidents&district={JUNG}&lang=ko", headers=analyst)
        assert page.status_code == 200
        assert f'data-day="{_day(9)}" data-suppressed="true"' in page.text
        assert f'data-day="{_day(9)}" data-value' not in page.text
        assert f'data-day="{_day(4)}" data-value' not in page.text
        assert f'data-day="{_day(6)}" data-value="12" data-suppressed="true"' in page.text
        assert "10건 미만이면" in page.text and "회색으로 표시한 날 3일" in page.text
        assert f'data-day="{_day(5)}" data-value="12">' in page.text
        # A district whose only counts are withheld is not offered; one with a published count is.
        assert f'<option value="{GANGNAM}"' not in page.text and f'<option value="{JONGNO}"' in page.text
        assert '<option value="danger"' not in page.text


def _surfaces(client, headers) -> dict:
    """Every trend surface of the incidents, as read: CSV and Parquet rows, GeoJSON, the page's plots."""
    found: dict = {}
    for query in ("", f"&district={JUNG}", f"&district={GANGNAM}", "&category=sos", "&category=danger"):
        found[f"csv{query}"] = _csv(client, headers, f"source=incidents{query}")
        found[f"parquet{query}"] = _parquet(client, headers, f"source=incidents{query}")
        page = client.get(f"/analytics/trends?source=incidents{query}&lang=en", headers=headers).text
        found[f"page{query}"] = re.findall(r"<svg.*?</svg>|<select.*?</select>|<p class=\"note\".*?</p>", page, re.S)
    for query in ("", "&category=sos", "&category=danger"):
        found[f"geojson{query}"] = _geojson(client, headers, query)
    return found


def test_nothing_shown_depends_on_a_withheld_count(db, db_url, tmp_path, analyst):
    """The decomposition (trend, season, residual), the totals and the page read only what is published: one
    more incident on each withheld district-day, still under k, changes nothing anywhere."""
    _incidents(db)
    with _client(db, db_url, tmp_path, k=10) as client:
        before = _surfaces(client, analyst)
        assert before[f"csv&district={JUNG}"][_day(7)]["trend"] != ""  # a trend next to withheld days is shown
        _add(db, JUNG, "sos", 9, 8)
        _add(db, JUNG, "sos", 4, 7)
        _add(db, JUNG, "danger", 6, 8)
        _add(db, GANGNAM, "sos", 11, 7)
        after = _surfaces(client, analyst)
        assert after == before
        _add(db, JUNG, "sos", 9, 2)  # day 9 reaches 11 of k = 10: now it is published, and everything moves
        moved = _surfaces(client, analyst)
        assert moved[f"csv&district={JUNG}"][_day(9)]["value"] == "11.0"
        assert moved[f"csv&district={JUNG}"][_day(7)]["trend"] != before[f"csv&district={JUNG}"][_day(7)]["trend"]


def test_the_threshold_is_the_setting(db, db_url, tmp_path, analyst):
    _incidents(db)
    with _client(db, db_url, tmp_path, k=2) as client:
        jung = _csv(client, analyst, f"source=incidents&district={JUNG}")
        assert (jung[_day(4)]["value"], jung[_day(4)]["suppressed"]) == ("2.0", "False")
        assert (jung[_day(9)]["value"], jung[_day(9)]["suppressed"]) == ("", "True")  # 1 is still under 2
        features = {f["properties"]["district"]: f["properties"] for f in _geojson(client, analyst)["features"]}
        assert features[GANGNAM][_day(11)] == 2
        page = client.get("/analytics/trends?source=incidents&lang=en", headers=analyst).text
        assert f'<option value="{GANGNAM}"' in page
    with _client(db, db_url, tmp_path, k=12) as client:
        everywhere = _csv(client, analyst, "source=incidents")
        assert everywhere[_day(2)]["value"] == "12.0"  # Jongno-gu's 11 is now under k
        assert everywhere[_day(0)]["value"] == "12.0" and everywhere[_day(0)]["suppressed"] == "False"


def test_reports_are_public_and_not_withheld(db, db_url, tmp_path, analyst):
    """A single report on a day is shown: reports are the city's open data already."""
    file_report(db, where=CITY_HALL)
    with _client(db, db_url, tmp_path, k=10) as client:
        rows = list(_csv(client, analyst, "source=reports").values())
        assert [(r["value"], r["suppressed"]) for r in rows] == [("1.0", "False")]
        assert _geojson_reports(client, analyst)["k_anonymity"] is None


def _geojson_reports(client, headers) -> dict:
    got = client.get("/analytics/trends/days.geojson?source=reports", headers=headers)
    assert got.status_code == 200, got.text
    return got.json()
