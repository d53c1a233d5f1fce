"""Open311 search precision and HTTP hygiene, on both stores: the radius is the core's metric distance (points
a few metres inside a circle are found, a few metres outside are not, by Open311 and by the service's
search alike), date bounds given to the second take in their whole second, invalid UTF-8 and over-long
queries get the spec's errors, an Idempotency-Key reused with another body is a conflict, the POST answer
carries the id alone, HEAD answers like GET on every read path, OPTIONS and CORS let browser apps in,
and English keywords are English."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update

from smartcity.core.geo import haversine_m
from smartcity.reports import service as S
from smartcity.reports.models import Report, ReportUpdate
from smartcity.reports.open311_wire import token_for
from tests.conftest import make_settings
from tests.reports.helpers import CITY_HALL, destination, jpeg

V2 = "/open311/v2"
HANGUL = re.compile("[\uac00-\ud7a3]")


def post(client, key, fmt="json", headers=None, **fields):
    data = {
        "api_key": key,
        "service_code": "roads-pothole",
        "attribute[size]": "large",
        "description": "A deep pothole",
        "lat": str(CITY_HALL[0]),
        "long": str(CITY_HALL[1]),
    }
    data.update(fields)
    return client.post(f"{V2}/requests.{fmt}", data=data, headers=headers or {})


def new_id(client, key, **fields) -> int:
    r = post(client, key, **fields)
    assert r.status_code == 201, r.text
    return int(r.json()[0]["service_request_id"])


def found(client, **params) -> set[int]:
    r = client.get(f"{V2}/requests.json", params=params)
    assert r.status_code == 200, r.text
    return {int(x["service_request_id"]) for x in r.json()}


# --- the radius is the core's metric distance -------------------------------------------------------------


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lat=st.floats(37.50, 37.62),
    lon=st.floats(126.90, 127.08),
    points=st.lists(st.tuples(st.floats(0, 2 * math.pi), st.floats(2, 4), st.booleans()), min_size=4, max_size=12),
)
def test_points_just_inside_a_3_km_circle_are_found_and_just_outside_are_not(client, db, key, lat, lon, points):
    template = new_id(client, key)
    with db.session() as s:
        row = {
            c.name: getattr(s.get(Report, template), c.key)
            for c in Report.__table__.columns
            if c.name not in ("id", "grid_cell", "idempotency_key")
        }
    expected, ids = set(), []
    with db.session() as s:
        for bearing, metres, inside in points:
            plat, plon = destination(lat, lon, bearing, 3000 - metres if inside else 3000 + metres)
            assert (haversine_m(lat, lon, plat, plon) <= 3000) == inside
            rid = s.execute(insert(Report).values({**row, "lat": plat, "lon": plon}).returning(Report.id)).scalar()
            ids.append(rid)
            if inside:
                expected.add(rid)
    try:
        params = {"lat": lat, "long": lon, "radius": 3000}
        assert found(client, **params) & set(ids) == expected
        assert found(client, status="open", **params) & set(ids) == expected  # the grid-cell index path
        with db.session() as s:
            page = S.search(s, S.ReportQuery(near=(lat, lon, 3000), ids=ids, page_size=100))
        assert {r.id for r in page.items} == expected
    finally:
        with db.session() as s:
            s.execute(delete(Report).where(Report.id.in_([*ids, template])))


# --- date bounds are whole seconds ------------------------------------------------------------------------


def test_end_date_equal_to_a_shown_requested_datetime_includes_that_request(client, db, key):
    rid = new_id(client, key)
    stamp = datetime(2026, 3, 4, 5, 6, 7, 654_321, tzinfo=UTC)
    with db.session() as s:
        s.execute(update(Report).where(Report.id == rid).values(created_at=stamp, updated_at=stamp))
    shown = client.get(f"{V2}/requests/{rid}.json").json()[0]
    assert shown["requested_datetime"] == "2026-03-04T14:06:07+09:00"  # to the second
    when = shown["requested_datetime"]
    assert rid in found(client, end_date=when)
    assert rid in found(client, start_date=when, end_date=when)
    assert rid in found(client, updated_before=shown["updated_datetime"])
    assert rid in found(client, updated_after=shown["updated_datetime"])
    assert rid not in found(client, end_date="2026-03-04T14:06:06+09:00")
    assert rid not in found(client, start_date="2026-03-04T14:06:08+09:00", end_date="2026-03-05T00:00:00+09:00")


def test_servicerequestupdates_end_date_includes_its_own_second(client, db, key):
    rid = new_id(client, key)
    with db.session() as s:
        from smartcity.core.auth import Identity

        entry = S.add_update(
            s,
            Identity(via="key", key_id=1, key_name="x", key_scope="open311"),
            rid,
            "Crew on the way",
            status="in_progress",
            external_id="ext-1",
        )
        entry_id = entry.id
        s.execute(
            update(ReportUpdate)
            .where(ReportUpdate.id == entry_id)
            .values(at=datetime(2026, 3, 4, 5, 6, 7, 900_000, tzinfo=UTC), external_id=None)
        )
    r = client.get(
        f"{V2}/servicerequestupdates.json",
        params={"end_date": "2026-03-04T14:06:07+09:00", "start_date": "2026-03-04T14:06:07+09:00"},
    )
    assert r.status_code == 200, r.text
    assert str(entry_id) in [u["update_id"] for u in r.json()]


# --- bad input in the spec's format -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_invalid_utf8_in_a_query_string_is_refused_with_400(client, fmt):
    r = client.get(f"{V2}/requests.{fmt}?service_code=%FF%FEpothole")
    assert r.status_code == 400
    if fmt == "json":
        assert r.json()[0]["code"] == 400 and "UTF-8" in r.json()[0]["description"]
    else:
        assert b"<errors><error><code>400</code>" in r.content and b"UTF-8" in r.content


def test_invalid_utf8_in_a_form_body_is_refused_and_nothing_is_stored(client, db, key):
    with db.session() as s:
        before = s.scalar(select(Report.id).order_by(Report.id.desc()).limit(1))
    body = (
        f"api_key={key}&service_code=roads-pothole&attribute%5Bsize%5D=large&lat={CITY_HALL[0]}"
        f"&long={CITY_HALL[1]}&description=bad%C3%28text"
    ).encode()
    r = client.post(f"{V2}/requests.json", content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "UTF-8" in r.json()[0]["description"]
    with db.session() as s:
        assert s.scalar(select(Report.id).order_by(Report.id.desc()).limit(1)) == before


def multipart(fields: list[tuple[str, bytes]], photo: bytes | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body written byte by byte (a client's own encoding, right or wrong)."""
    boundary = b"----smartcity-test-boundary"
    out = b""
    for name, value in fields:
        out += b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n'
        out += value + b"\r\n"
    if photo is not None:
        out += (
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="media"; filename="p.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + photo + b"\r\n"
        )
    return out + b"--" + boundary + b"--\r\n", f"multipart/form-data; boundary={boundary.decode()}"


def test_invalid_utf8_in_a_multipart_text_field_is_refused_and_valid_korean_with_a_photo_is_not(client, db, key):
    fields = [
        (k, v.encode())
        for k, v in {
            "api_key": key,
            "service_code": "roads-pothole",
            "lat": str(CITY_HALL[0]),
            "long": str(CITY_HALL[1]),
            "attribute[size]": "large",
        }.items()
    ]
    with db.session() as s:
        before = s.scalar(select(Report.id).order_by(Report.id.desc()).limit(1))
    body, ctype = multipart([*fields, ("description", "도로가 ".encode() + b"\xea\xb9")], jpeg())
    bad = client.post(f"{V2}/requests.json", content=body, headers={"content-type": ctype})
    assert bad.status_code == 400 and "description" in bad.json()[0]["description"]
    with db.session() as s:
        assert s.scalar(select(Report.id).order_by(Report.id.desc()).limit(1)) == before
    body, ctype = multipart([*fields, ("description", "도로가 파였어요".encode())], jpeg())
    good = client.post(f"{V2}/requests.json", content=body, headers={"content-type": ctype})
    assert good.status_code == 201, good.text
    with db.session() as s:
        report = s.get(Report, int(good.json()[0]["service_request_id"]))
        assert report.description == "도로가 파였어요" and report.photo_count == 1


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_an_over_long_query_gets_the_spec_error_format(client, fmt):
    r = client.get(f"{V2}/requests.{fmt}", params={"service_code": ",".join(["roads-pothole"] * 1000)})
    assert r.status_code == 414
    if fmt == "json":
        assert r.json() == [{"code": 414, "description": r.json()[0]["description"]}]
    else:
        assert b"<errors><error><code>414</code>" in r.content


# --- POST: the answer and idempotency -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_the_post_answer_carries_the_id_and_no_token(client, key, fmt):
    r = post(client, key, fmt=fmt)
    assert r.status_code == 201, r.text
    if fmt == "json":
        out = r.json()[0]
        assert out["service_request_id"].isdigit() and "token" not in out
    else:
        assert b"<service_request_id>" in r.content and b"<token>" not in r.content


def test_an_idempotency_key_reused_with_another_body_is_a_conflict(client, db, key):
    first = post(client, key, headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == 201
    again = post(client, key, headers={"Idempotency-Key": "abc-1"})
    assert again.status_code == 200
    assert again.json()[0]["service_request_id"] == first.json()[0]["service_request_id"]
    other = post(client, key, headers={"Idempotency-Key": "abc-1"}, description="Another pothole entirely")
    assert other.status_code == 409 and "Idempotency-Key" in other.json()[0]["description"]
    with db.session() as s:
        assert s.scalar(select(Report.id).where(Report.description == "Another pothole entirely")) is None


# --- HEAD, OPTIONS, CORS ------------------------------------------------------------------------------------


def test_head_answers_like_get_on_every_read_path(client, key, settings):
    rid = new_id(client, key)
    paths = [
        "/open311/discovery.xml",
        f"{V2}/discovery.json",
        f"{V2}/services.json",
        f"{V2}/services.xml",
        f"{V2}/services/roads-pothole.json",
        f"{V2}/requests.json",
        f"{V2}/requests.xml",
        f"{V2}/requests/{rid}.json",
        f"{V2}/tokens/{token_for(rid, settings)}.json",
        f"{V2}/servicerequestupdates.xml",
        f"{V2}/requests/999999.json",
    ]
    for path in paths:
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code, path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers["content-length"] == str(len(got.content)), path
        assert head.content == b"", path


def test_options_names_the_methods_of_each_path(client):
    r = client.options(f"{V2}/requests.json")
    assert r.status_code == 204
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "HEAD", "POST", "OPTIONS"}
    r = client.options(f"{V2}/services/roads-pothole.xml")
    assert r.status_code == 204 and "POST" not in r.headers["allow"] and "HEAD" in r.headers["allow"]


def test_cors_lets_a_browser_app_of_an_allowed_origin_read_and_post(db, db_url, tmp_path):
    from fastapi.testclient import TestClient

    from smartcity.app import create_app

    app = create_app(make_settings(db_url, tmp_path, open311_cors_origins="https://map.example.org"), db)
    with TestClient(app) as client:
        allowed = {"Origin": "https://map.example.org"}
        r = client.get(f"{V2}/services.json", headers=allowed)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://map.example.org"
        assert "access-control-allow-credentials" not in r.headers
        pre = client.options(
            f"{V2}/requests.json",
            headers={
                **allowed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "idempotency-key",
            },
        )
        assert pre.status_code == 200 and "POST" in pre.headers["access-control-allow-methods"]
        assert "idempotency-key" in pre.headers["access-control-allow-headers"].lower()
        refused = client.get(f"{V2}/requests.json?service_code=%FF", headers=allowed)
        assert refused.status_code == 400 and refused.headers["access-control-allow-origin"] == allowed["Origin"]
        stranger = client.get(f"{V2}/services.json", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers
        assert "access-control-allow-origin" not in client.get("/api/reports", headers=allowed).headers


# --- keywords in the asked language -------------------------------------------------------------------------


def test_english_keywords_are_english_and_korean_ones_korean(client):
    en = {s["service_code"]: s["keywords"] for s in client.get(f"{V2}/services.json?locale=en").json()}
    ko = {s["service_code"]: s["keywords"] for s in client.get(f"{V2}/services.json?locale=ko").json()}
    assert "pothole" in en["roads-pothole"].split(", ") and "포트홀" in ko["roads-pothole"].split(", ")
    assert not any(HANGUL.search(k) for k in en.values())
    assert all(HANGUL.search(k) for k in ko.values() if k)
    assert all(not re.search("[a-z]", k) for k in ko.values())


def test_a_whole_day_end_date_still_spans_at_most_90_days(client):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    r = client.get(
        f"{V2}/requests.json",
        params={"start_date": start.isoformat(), "end_date": (start + timedelta(days=91)).isoformat()},
    )
    assert r.status_code == 400


def test_over_the_wire_a_long_query_head_and_options_answer_as_documented(live_app):
    """The real server (uvicorn) in front: its HTTP parser lets a 20 KB query through to our answer."""
    import httpx

    base = f"{live_app.url}{V2}"
    long = httpx.get(f"{base}/requests.xml", params={"service_code": "x" * 20_000}, timeout=10)
    assert long.status_code == 414 and long.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    got, head = httpx.get(f"{base}/services.json", timeout=10), httpx.head(f"{base}/services.json", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(got.content))
    assert httpx.options(f"{base}/requests.json", timeout=10).status_code == 204
