"""A city that is not Seoul files reports end to end with its own units: its fallback unit is named by its
profile, not by a code default, and nothing Seoul's shows up on the way."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartcity.app import create_app
from smartcity.core.city import load_profile
from smartcity.core.db import Database, migrate
from smartcity.core.errors import InvalidInput
from smartcity.core.seed import seed_city
from smartcity.reports.models import Report
from tests.conftest import make_key, make_settings

# A made-up town: one district, a help desk of last resort, road crews per district; English only.
TOWN = """
name_ko = "테스트부르크"
name_en = "Testburg"
language = "en"
languages = ["en"]
timezone = "Europe/Berlin"
bbox = [10.00, 50.00, 10.10, 50.10]
center = [50.05, 10.05]
zoom = 13
{fallback}
outline = [[10.00, 50.00], [10.10, 50.00], [10.10, 50.10], [10.00, 50.10], [10.00, 50.00]]

[[districts]]
code = "T01"
name_ko = "중앙"
name_en = "Old Town"
point = [50.05, 10.05]

[[departments]]
code = "town-help-desk"
name_ko = "민원센터"
name_en = "Testburg Help Desk"

[[district_departments]]
code = "{{code}}-roads"
name_ko = "{{name_ko}} 도로과"
name_en = "{{name_en}} Roads"
"""
HERE = (50.051, 10.052)
SEOUL_NAMES = ("seoul", "dasan", "gangnam", "서울", "다산", "강남", "11230", "11020")


def _town(tmp_path, name: str, fallback: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(TOWN.format(fallback=fallback), encoding="utf-8")
    return str(path)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path) -> str:
    """An empty database (no Seoul seeded into it) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'town.db'}"
    server = request.getfixturevalue("postgres")
    name = f"town_{abs(hash(request.node.nodeid)) % 10**8}"
    server.execute(f"CREATE DATABASE {name}")
    request.addfinalizer(lambda: server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    return server.url(name)


def _client(url: str, tmp_path, city: str):
    migrate(url)
    db = Database(url)
    with db.session() as s:
        seed_city(s, load_profile(city))
    return db, TestClient(create_app(make_settings(url, tmp_path, city=city), db))


def _stored(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Report))


def test_a_town_files_reports_to_its_own_units_and_its_own_fallback(empty_url, tmp_path):
    db, client = _client(empty_url, tmp_path, _town(tmp_path, "testburg", 'fallback_unit = "town-help-desk"'))
    with client:
        # A district unit covers potholes; nothing of Testburg's covers fire hazards (Seoul's city-fire
        # does in Seoul), so the town's help desk takes them.
        pothole = client.post(
            "/api/reports",
            json={
                "category": "roads-pothole",
                "lat": HERE[0],
                "lon": HERE[1],
                "title": "Pothole",
                "attributes": {"size": "small"},
            },
        )
        assert pothole.status_code == 201, pothole.text
        assert pothole.json()["report"]["unit"] == "T01-roads"
        # FixMyStreet's Open311 client posts form fields with its key.
        key = make_key(db, scope="open311")
        fire = client.post(
            "/open311/v2/requests.json",
            data={
                "api_key": key,
                "service_code": "fire-hazard",
                "lat": str(HERE[0]),
                "long": str(HERE[1]),
                "description": "Blocked fire exit behind the bakery",
                "email": "anna@example.org",
            },
        )
        assert fire.status_code == 201, fire.text
        rid = fire.json()[0]["service_request_id"]
        shown = client.get(f"/api/reports/{rid}")
        assert shown.json()["unit"] == "town-help-desk"
        everything = (pothole.text + fire.text + shown.text).lower()
        assert not [name for name in SEOUL_NAMES if name in everything]
    db.dispose()


def test_a_town_without_a_fallback_unit_refuses_what_no_unit_covers_and_stores_nothing(empty_url, tmp_path):
    db, client = _client(empty_url, tmp_path, _town(tmp_path, "nofallback", ""))
    with client:
        r = client.post(
            "/api/reports",
            json={"category": "fire-hazard", "lat": HERE[0], "lon": HERE[1], "title": "Blocked exit"},
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "no_unit"
        assert "fallback_unit" in r.json()["error"]["message"]
        assert _stored(db) == 0
    db.dispose()


def test_the_setting_overrides_the_profiles_fallback_unit(empty_url, tmp_path):
    city = _town(tmp_path, "override", 'fallback_unit = "town-help-desk"')
    migrate(empty_url)
    db = Database(empty_url)
    with db.session() as s:
        seed_city(s, load_profile(city))
    settings = make_settings(empty_url, tmp_path, city=city, reports_fallback_unit="T01-roads")
    with TestClient(create_app(settings, db)) as client:
        r = client.post(
            "/api/reports",
            json={"category": "fire-hazard", "lat": HERE[0], "lon": HERE[1], "title": "Blocked exit"},
        )
        assert r.status_code == 201 and r.json()["report"]["unit"] == "T01-roads"
    db.dispose()


def test_a_misspelt_fallback_unit_stops_the_start(tmp_path):
    city = _town(tmp_path, "misspelt", 'fallback_unit = "town-helpdesk"')
    with pytest.raises(InvalidInput, match="fallback_unit 'town-helpdesk' is not one of its departments"):
        load_profile(city)


def test_seoul_names_its_call_centre_in_its_profile_not_in_code():
    seoul = load_profile("seoul")
    assert seoul.fallback_unit == "dasan120" and seoul.fallback_unit in {u.code for u in seoul.units}
