"""Open311 requests placed by the gazetteer: a POST with only `address_string` (as FixMyStreet's Open311
client sends one when its user typed a place instead of dropping a pin) is filed at the place it names; an
address no place matches gets the GeoReport error format and stores nothing — on both stores."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import func, select

from smartcity.core import places
from smartcity.core.context import context_of
from smartcity.reports.models import Report
from tests.conftest import make_key

V2 = "/open311/v2"


def fixmystreet_post(client, key, fmt, **fields):
    """The form FixMyStreet's Open311 client posts (application/x-www-form-urlencoded), without lat/long."""
    data = {
        "api_key": key,
        "service_code": "roads-pothole",
        "attribute[size]": "large",
        "description": "A deep pothole by the exit",
        "first_name": "Minji",
        "last_name": "Kim",
        "email": "kim@example.org",
    }
    data.update(fields)
    return client.post(f"{V2}/requests.{fmt}", data=data)


def reports(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Report))


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_request_with_only_an_address_is_placed_at_the_named_place(client, db, fmt):
    key = make_key(db, scope="open311")
    r = fixmystreet_post(client, key, fmt, address_string="강남역 10번 출구 앞")
    assert r.status_code == 201, r.text
    rid = int(
        r.json()[0]["service_request_id"]
        if fmt == "json"
        else ET.fromstring(r.content).findtext("request/service_request_id")
    )
    station = places.geocoder(db).search("강남역", "ko", limit=1)[0]
    with db.session() as s:
        report = s.get(Report, rid)
        assert (report.lat, report.lon) == pytest.approx((station.lat, station.lon))
        assert report.address_string == "강남역 10번 출구 앞"
    back = client.get(f"{V2}/requests/{rid}.json").json()[0]
    assert (float(back["lat"]), float(back["long"])) == pytest.approx((station.lat, station.lon))


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_an_address_no_place_matches_gets_the_open311_error_and_nothing_is_stored(client, db, fmt):
    key = make_key(db, scope="open311")
    before = reports(db)
    r = fixmystreet_post(client, key, fmt, address_string="없는곳 어딘가 123")
    assert r.status_code == 400
    if fmt == "json":
        errors = [(e["code"], e["description"]) for e in r.json()]
    else:
        errors = [(int(e.findtext("code")), e.findtext("description")) for e in ET.fromstring(r.content)]
    assert errors and errors[0][0] == 400 and "cannot place an address" in errors[0][1]
    assert "없는곳 어딘가 123" in errors[0][1]
    assert reports(db) == before


def test_a_romanised_place_name_places_a_request_too(client, db):
    key = make_key(db, scope="open311")
    r = fixmystreet_post(client, key, "json", address_string="Seoul City Hall, main gate")
    assert r.status_code == 201, r.text
    hall = next(p for p in places.well_known(context_of(db).profile) if p.name_en == "Seoul City Hall")
    with db.session() as s:
        report = s.get(Report, int(r.json()[0]["service_request_id"]))
        assert (report.lat, report.lon) == pytest.approx((hall.lat, hall.lon))
