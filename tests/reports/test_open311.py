"""Open311 GeoReport v2 over HTTP on both stores: every endpoint in both formats, the spec's error bodies and
codes, GET requests' filters, defaults and extensions, mySociety's servicerequestupdates, bad input that
leaves nothing behind, and the `smartcity open311 keys` command."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select, update

from smartcity.core.auth import ANONYMOUS, identity_of_user
from smartcity.core.models import User
from smartcity.reports import service as S
from smartcity.reports.models import Report, ReportContact
from tests.conftest import make_key, make_settings, make_user
from tests.reports.helpers import CITY_HALL, GANGNAM, counts, jpeg

V2 = "/open311/v2"
BUSAN = (35.1796, 129.0756)
FORMATS = ["json", "xml"]


def post(client, key, fmt="json", where=CITY_HALL, files=None, headers=None, **fields):
    data = {"service_code": "roads-pothole", "attribute[size]": "large", "description": "A deep pothole"}
    if key is not None:
        data["api_key"] = key
    if where is not None:
        data["lat"], data["long"] = str(where[0]), str(where[1])
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    return client.post(f"{V2}/requests.{fmt}", data=data, files=files, headers=headers or {})


def new_id(client, key, **fields) -> int:
    r = post(client, key, **fields)
    assert r.status_code == 201, r.text
    return int(r.json()[0]["service_request_id"])


def xml(response) -> ET.Element:
    assert response.headers["content-type"].startswith("text/xml")
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.content)


def errors_of(response, fmt) -> list[tuple[int, str]]:
    if fmt == "xml":
        root = xml(response)
        assert root.tag == "errors"
        return [(int(e.findtext("code")), e.findtext("description")) for e in root.findall("error")]
    assert response.headers["content-type"].startswith("application/json")
    return [(e["code"], e["description"]) for e in response.json()]


def assert_error(response, fmt, status, words=""):
    assert response.status_code == status, response.text
    errors = errors_of(response, fmt)
    assert errors and all(code == status for code, _ in errors)
    assert words.lower() in " ".join(d for _, d in errors).lower(), errors


def admin(db):
    make_user(db, "boss", "admin")
    with db.session() as s:
        return identity_of_user(s.scalar(select(User).where(User.username == "boss")), "session")


def ids(response) -> list[int]:
    return [int(r["service_request_id"]) for r in response.json()]


# --- discovery and services ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/open311/discovery", f"{V2}/discovery"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_discovery(client, path, fmt):
    r = client.get(f"{path}.{fmt}")
    assert r.status_code == 200
    if fmt == "json":
        doc = r.json()
        endpoint = doc["endpoints"][0]
    else:
        root = xml(r)
        assert root.tag == "discovery"
        doc = {e.tag: e.text for e in root if e.tag != "endpoints"}
        ep = root.find("endpoints/endpoint")
        endpoint = {e.tag: e.text for e in ep if e.tag != "formats"}
        endpoint["formats"] = [f.text for f in ep.findall("formats/format")]
    assert doc["changeset"] and doc["contact"] and doc["key_service"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "http://testserver/open311/v2" and endpoint["type"] == "production"
    assert endpoint["formats"] == ["text/xml", "application/json"] and endpoint["changeset"] == doc["changeset"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_service_list_has_groups_keywords_and_metadata_in_both_languages(client, fmt):
    def services(**kw):
        r = client.get(f"{V2}/services.{fmt}", **kw)
        assert r.status_code == 200, r.text
        if fmt == "json":
            return {s["service_code"]: s for s in r.json()}
        root = xml(r)
        assert root.tag == "services"
        return {s.findtext("service_code"): {e.tag: e.text for e in s} for s in root.findall("service")}

    ko = services()
    assert len(ko) == 67
    pothole = ko["roads-pothole"]
    assert set(pothole) == {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
    assert pothole["type"] == "realtime" and pothole["service_name"] == "도로 파임(포트홀)"
    assert pothole["metadata"] in (True, "true") and ko["roads-sinkhole"]["metadata"] in (False, "false")
    assert "," in pothole["keywords"] and pothole["group"] == "도로"
    en = services(params={"locale": "en", "jurisdiction_id": "seoul"})
    assert en["roads-pothole"]["service_name"] == "Pothole" and en["roads-pothole"]["group"] == "Roads"
    assert services(headers={"Accept-Language": "en-US,en;q=0.8"})["roads-pothole"]["service_name"] == "Pothole"


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_unknown_jurisdiction_is_404_in_open311_format(client, fmt):
    for path in ("services", "requests", "services/roads-pothole", "servicerequestupdates"):
        assert_error(client.get(f"{V2}/{path}.{fmt}", params={"jurisdiction_id": "busan"}), fmt, 404, "jurisdiction")


def test_service_definitions_cover_every_datatype(client):
    seen = {}
    for service in client.get(f"{V2}/services.json?locale=en").json():
        if not service["metadata"]:
            continue
        definition = client.get(f"{V2}/services/{service['service_code']}.json?locale=en").json()
        assert definition["service_code"] == service["service_code"]
        for a in definition["attributes"]:
            assert {"variable", "code", "datatype", "required", "datatype_description", "order", "description"} <= set(
                a
            )
            seen.setdefault(a["datatype"], a)
    assert set(seen) == {"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"}
    assert all(v["key"] and v["name"] for v in seen["multivaluelist"]["values"])
    root = xml(client.get(f"{V2}/services/roads-pothole.xml"))
    assert root.tag == "service_definition" and root.findtext("service_code") == "roads-pothole"
    size = root.find("attributes/attribute")
    assert [size.findtext(t) for t in ("variable", "code", "datatype", "required", "order")] == [
        "true",
        "size",
        "singlevaluelist",
        "true",
        "1",
    ]
    assert [v.findtext("key") for v in size.findall("values/value")] == ["small", "medium", "large"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_things_are_404(client, fmt):
    assert_error(client.get(f"{V2}/services/no-such-service.{fmt}"), fmt, 404, "no-such-service")
    assert_error(client.get(f"{V2}/requests/123456.{fmt}"), fmt, 404, "123456")
    assert_error(client.get(f"{V2}/requests/abc.{fmt}"), fmt, 404)
    assert_error(client.get(f"{V2}/tokens/1-00000000000000000000.{fmt}"), fmt, 404, "token")
    assert_error(client.get(f"{V2}/nothing-here.{fmt}"), fmt, 404)
    assert_error(client.get(f"{V2}/services.csv"), "json", 404, "format")


# --- POST requests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_partner_files_a_request_with_attributes_of_every_kind(client, db, key, fmt):
    r = post(
        client,
        key,
        fmt,
        **{
            "service_code": "cleaning-illegal-dumping",
            "attribute[size]": None,
            "attribute[waste_types][]": ["household", "construction"],
            "description": "Sofa and bricks\nleft by the gate",
            "address_string": "세종대로 110",
            "email": "kim@example.org",
            "first_name": "Minji",
            "last_name": "Kim",
            "phone": "010-1234-5678",
            "device_id": "abc",
            "account_id": "77",
        },
    )
    assert r.status_code == 201, r.text
    if fmt == "json":
        out = r.json()[0]
    else:
        root = xml(r)
        assert root.tag == "service_requests"
        out = {e.tag: e.text for e in root.find("request")}
    assert set(out) == {"service_request_id", "service_notice", "account_id"}  # the id or a token, not both
    rid = int(out["service_request_id"])
    with db.session() as s:
        report = S.get_report(s, rid)
        assert report.attributes == {"waste_types": ["household", "construction"]}
        assert (report.source, report.title, report.address_string) == ("open311", "Sofa and bricks", "세종대로 110")
        assert report.public_name is None  # anonymous unless opted in
        contact = s.get(ReportContact, rid)
        assert (contact.name, contact.email, contact.phone) == ("Minji Kim", "kim@example.org", "010-1234-5678")
    rid2 = new_id(
        client,
        key,
        **{
            "service_code": "traffic-illegal-parking",
            "attribute[size]": None,
            "attribute[plate]": "12가3456",
            "attribute[seen_at]": "2024-05-01T09:30:00+09:00",
        },
    )
    rid3 = new_id(client, key, **{"attribute[depth_cm]": "12.5"})
    rid4 = new_id(
        client,
        key,
        **{
            "service_code": "other-suggestion",
            "attribute[size]": None,
            "attribute[details]": "Longer text\nover lines",
        },
    )
    with db.session() as s:
        assert S.get_report(s, rid2).attributes == {"plate": "12가3456", "seen_at": "2024-05-01T00:30:00+00:00"}
        assert S.get_report(s, rid3).attributes == {"size": "large", "depth_cm": 12.5}
        assert S.get_report(s, rid4).attributes == {"details": "Longer text\nover lines"}
    # Contact details never leave through Open311.
    for path in (
        "requests.json?extensions=true",
        "requests.xml?extensions=true",
        f"requests/{rid}.xml",
        "servicerequestupdates.json",
    ):
        text = client.get(f"{V2}/{path}").text
        assert "kim@example.org" not in text and "Minji" not in text and "1234-5678" not in text


def test_media_is_uploaded_as_in_the_v2_1_draft(client, db, key):
    r = post(client, key, files={"media": ("pothole.jpg", jpeg(exif=True), "image/jpeg")})
    assert r.status_code == 201, r.text
    rid = int(r.json()[0]["service_request_id"])
    with db.session() as s:
        (photo,) = S.photos_of(s, rid)
        assert b"SecretCam" not in S.photo_file(s, photo.id).read_bytes()
    one = client.get(f"{V2}/requests/{rid}.json?extensions=true").json()[0]
    assert one["media_url"] == f"http://testserver/api/reports/photos/{photo.id}.jpg"
    assert one["media_urls"] == [one["media_url"]]


def test_a_media_url_is_kept_as_a_link_and_says_so(client, key):
    r = post(client, key, media_url="http://example.org/x.jpg", locale="en")
    assert r.status_code == 201 and "media_url kept as a link (not fetched)" in r.json()[0]["service_notice"]
    rid = r.json()[0]["service_request_id"]
    assert client.get(f"{V2}/requests/{rid}.json").json()[0]["media_url"] == "http://example.org/x.jpg"


def test_html_in_text_is_stored_as_text_and_escaped_in_xml(client, db, key):
    evil = "<script>alert('x')</script> & <b>bold</b> \x07é"
    rid = new_id(client, key, description=evil)
    with db.session() as s:
        assert S.get_report(s, rid).description.startswith("<script>alert('x')</script> & <b>bold</b>")
    r = client.get(f"{V2}/requests/{rid}.xml")
    assert b"<script>" not in r.content and b"&lt;script&gt;" in r.content
    assert xml(r).findtext("request/description").startswith("<script>alert('x')</script> & <b>bold</b>")
    assert client.get(f"{V2}/requests/{rid}.json").json()[0]["description"].startswith("<script>")


def test_the_xml_survives_characters_xml_cannot_carry(client, db, key):
    rid = new_id(
        client,
        key,
        **{"service_code": "traffic-illegal-parking", "attribute[size]": None, "attribute[plate]": "12\x01가"},
    )
    root = xml(client.get(f"{V2}/requests/{rid}.xml?extensions=true"))
    assert root.findtext("request/attributes/attribute/value") == "12가"


BAD_POSTS = [
    (dict(key=None), 403, "api_key"),
    (dict(key="sc_not-a-key"), 403, "api_key"),
    (dict(service_code=None), 400, "service_code"),
    (dict(service_code="no-such-service"), 404, "service_code"),
    (dict(where=BUSAN), 400, "not inside the city"),
    (dict(where=("north", "126.9")), 400, "latitude"),
    (dict(where=None, address_string="세종대로 110"), 400, "cannot place an address"),
    (dict(where=None), 400, "lat and long"),
    (dict(where=None, lat="37.5"), 400, "lat and long"),
    (dict(**{"attribute[size]": None}), 400, "attribute[size]: is required"),
    (dict(**{"attribute[size]": "enormous"}), 400, "attribute[size]"),
    (dict(**{"attribute[depth_cm]": "deep"}), 400, "attribute[depth_cm]"),
    (dict(**{"attribute[colour]": "red"}), 400, "attribute[colour]"),
    (dict(description="x" * 4001), 400, "4000"),
    (dict(files={"media": ("doc.jpg", b"%PDF-1.4 not a picture", "image/jpeg")}), 400, "not a jpeg"),
    (dict(files={"media": ("big.jpg", jpeg(600, 600) + b"\0" * 60_000, "image/jpeg")}), 413, "larger"),
    (dict(jurisdiction_id="busan"), 404, "jurisdiction"),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fields, status, words", BAD_POSTS, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD_POSTS)])
def test_bad_posts_get_open311_errors_and_store_nothing(db, tmp_path, key, fields, status, words, fmt):
    from fastapi.testclient import TestClient

    from smartcity.app import create_app

    app = create_app(make_settings(db.url, tmp_path, reports_max_photo_bytes=50_000), db)
    fields = dict(fields)
    api_key = fields.pop("key", key)
    files = fields.pop("files", None)
    # A valid photo comes first: it must not be left behind either.
    media = [("media", ("ok.jpg", jpeg(), "image/jpeg"))] + ([("media", files["media"])] if files else [])
    with TestClient(app) as client:
        before = counts(db)
        r = post(client, api_key, fmt, files=media, **fields)
        assert_error(r, fmt, status, words)
        assert counts(db) == before
        uploads = tmp_path / "var" / "uploads"
        assert not uploads.exists() or not [p for p in uploads.rglob("*") if p.is_file()]


def test_a_revoked_or_wrong_scope_key_is_refused(client, db, key):
    from smartcity.core import accounts

    general = make_key(db)  # a platform key without the open311 scope
    assert_error(post(client, general), "json", 403, "api_key")
    with db.session() as s:
        row = accounts.find_api_key(s, key)
        accounts.revoke_api_key(s, row.id)
    assert_error(post(client, key, "xml"), "xml", 403, "api_key")


def test_a_repeated_submission_with_an_idempotency_key_files_once(client, db, key):
    first = post(client, key, headers={"Idempotency-Key": "phone-42"})
    again = post(client, key, headers={"Idempotency-Key": "phone-42"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert ids(first) == ids(again)
    by_field = [post(client, key, idempotency_key="form-7") for _ in range(2)]
    assert ids(by_field[0]) == ids(by_field[1]) != ids(first)
    assert counts(db)["reports"] == 2


def test_tokens_lead_to_the_request(client, key, settings):
    from smartcity.reports.open311_wire import token_for

    out = post(client, key).json()[0]
    out["token"] = token_for(int(out["service_request_id"]), settings)  # tokens handed out before ids were
    for fmt in FORMATS:
        r = client.get(f"{V2}/tokens/{out['token']}.{fmt}")
        assert r.status_code == 200
        got = r.json()[0] if fmt == "json" else {e.tag: e.text for e in xml(r).find("request")}
        assert got == {"service_request_id": out["service_request_id"], "token": out["token"]}
    forged = out["token"][:-1] + ("0" if out["token"][-1] != "0" else "1")
    assert_error(client.get(f"{V2}/tokens/{forged}.json"), "json", 404, "token")


# --- GET requests -------------------------------------------------------------------------------------------

FIELDS = {
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
}


def test_a_request_in_both_formats(client, key):
    rid = new_id(client, key, address_string="세종대로 110")
    (one,) = client.get(f"{V2}/requests/{rid}.json").json()
    assert set(one) == FIELDS
    assert one["status"] == "open" and one["service_code"] == "roads-pothole"
    assert one["service_name"] == "도로 파임(포트홀)"
    assert one["agency_responsible"] == "중구 건설관리과" and one["address"] == "세종대로 110"
    assert (one["lat"], one["long"]) == CITY_HALL
    assert one["requested_datetime"].endswith("+09:00")
    created = datetime.fromisoformat(one["requested_datetime"])
    assert datetime.fromisoformat(one["expected_datetime"]) - created == timedelta(days=3)
    root = xml(client.get(f"{V2}/requests/{rid}.xml?locale=en"))
    (request,) = root.findall("request")
    assert {e.tag for e in request} == FIELDS
    assert request.findtext("service_name") == "Pothole" and request.findtext("long") == str(CITY_HALL[1])


def _age(db, rid, days: float, updated_days: float | None = None):
    now = datetime.now(UTC)
    with db.session() as s:
        values = {"created_at": now - timedelta(days=days)}
        if updated_days is not None:
            values["updated_at"] = now - timedelta(days=updated_days)
        s.execute(update(Report).where(Report.id == rid).values(**values))


def test_filters_defaults_and_paging(client, db, key):
    boss = admin(db)
    a = new_id(client, key)  # Jung-gu pothole, open
    b = new_id(client, key, where=GANGNAM)  # Gangnam pothole, to be fixed
    c = new_id(client, key, **{"service_code": "streets-streetlight", "attribute[size]": None})
    old = new_id(client, key)
    _age(db, old, 100, updated_days=100)
    _age(db, a, 10, updated_days=1)
    _age(db, b, 5, updated_days=5)
    _age(db, c, 1, updated_days=1)
    with db.session() as s:
        S.transition(s, boss, b, "fixed", text="Filled it in")

    def get(**params):
        r = client.get(f"{V2}/requests.json", params=params)
        assert r.status_code == 200, r.text
        return ids(r)

    assert get() == [c, b, a]  # newest first; the 100-day-old one is outside the default 90 days
    assert get(service_request_id=f"{old},{a}") == [a, old]  # ids override every other filter
    assert get(service_request_id=f"{old}", status="open", start_date="2001-01-01T00:00:00Z") == [old]
    now = datetime.now(UTC)
    assert get(start_date=(now - timedelta(days=101)).isoformat(), end_date=(now - timedelta(days=50)).isoformat()) == [
        old
    ]
    assert get(start_date=(now - timedelta(days=7)).isoformat()) == [c, b]
    assert get(end_date=(now - timedelta(days=7)).isoformat()) == [a]
    assert get(status="open") == [c, a] and get(status="closed") == [b] and get(status="open,closed") == [c, b, a]
    assert get(service_code="roads-pothole") == [b, a]
    assert get(service_code="roads-pothole,streets-streetlight", status="open") == [c, a]
    assert get(lat=GANGNAM[0], long=GANGNAM[1], radius=200) == [b]
    assert get(lat=CITY_HALL[0], long=CITY_HALL[1], radius=200) == [c, a]
    assert get(bbox="127.0,37.45,127.1,37.55") == [b]
    assert get(agency_responsible="11230-roads") == [b]
    assert get(updated_after=(now - timedelta(days=2)).isoformat()) == [c, b, a]  # b was just fixed
    assert get(updated_before=(now - timedelta(days=3)).isoformat()) == [old]
    assert get(page_size=2) == [c, b] and get(page_size=2, page=2) == [a] and get(page_size=2, page=3) == []
    assert get(status="fixed") == [b]  # our detailed statuses work too (extension)
    (fixed,) = client.get(f"{V2}/requests/{b}.json").json()
    assert fixed["status"] == "closed" and fixed["status_notes"] == "Filled it in"


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_search_parameters_are_400(client, fmt):
    now = datetime.now(UTC)
    for params, words in [
        ({"status": "lost"}, "status"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"start_date": (now - timedelta(days=100)).isoformat(), "end_date": now.isoformat()}, "90 days"),
        ({"page_size": "1001"}, "page_size"),
        ({"page": "0"}, "page"),
        ({"lat": "37.5"}, "long"),
        ({"lat": "x", "long": "127"}, "lat"),
        ({"radius": "10"}, "radius"),
        ({"lat": "37.5", "long": "127", "radius": "-1"}, "radius"),
        ({"service_request_id": "1,abc"}, "service_request_id"),
        ({"bbox": "1,2"}, "box"),
    ]:
        assert_error(client.get(f"{V2}/requests.{fmt}", params=params), fmt, 400, words)


def test_at_most_1000_requests_by_default(client, db, key):
    rid = new_id(client, key)
    with db.session() as s:
        row = s.execute(select(Report.__table__).where(Report.id == rid)).mappings().one()
        template = {k: v for k, v in row.items() if k not in ("id", "idempotency_key")}
        s.execute(insert(Report.__table__), [template] * 1004)
    r = client.get(f"{V2}/requests.json")
    assert len(r.json()) == 1000
    assert len(client.get(f"{V2}/requests.json?page=2").json()) == 5
    assert len(xml(client.get(f"{V2}/requests.xml?page_size=3")).findall("request")) == 3


def test_extensions_add_detailed_status_duplicates_media_and_notes(client, db, key):
    boss = admin(db)
    parent = new_id(client, key)
    child = new_id(client, key, files={"media": ("a.jpg", jpeg(), "image/jpeg")})
    with db.session() as s:
        S.transition(s, boss, parent, "acknowledged", text="We are on it")
        S.add_note(s, boss, parent, "internal: call the contractor")
        S.merge(s, boss, parent, [child], text="Same hole")
    got = {int(r["service_request_id"]): r for r in client.get(f"{V2}/requests.json?extensions=true&locale=en").json()}
    p, c = got[parent], got[child]
    assert p["detailed_status"] == "INVESTIGATING" and p["detailed_status_name"] == "Acknowledged"
    assert c["detailed_status"] == "DUPLICATE" and c["duplicate_of"] == str(parent) and c["status"] == "closed"
    assert p["support_count"] == 1 and p["agency_code"] == "11020-roads" and p["district"] == "11020"
    assert [n["description"] for n in p["notes"]] == ["We are on it"]  # internal notes stay inside
    assert p["notes"][0]["status"] == "INVESTIGATING" and p["status_notes"] == "We are on it"
    assert len(c["media_urls"]) == 1 and c["media_url"] == c["media_urls"][0]
    assert p["attributes"] == [{"code": "size", "value": "large"}]
    root = xml(client.get(f"{V2}/requests/{parent}.xml?extensions=true"))
    assert root.findtext("request/notes/note/description") == "We are on it"
    assert "internal" not in client.get(f"{V2}/requests.xml?extensions=true").text


# --- mySociety servicerequestupdates ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_partner_posts_updates_idempotently(client, db, key, fmt):
    rid = new_id(client, key)
    form = {
        "api_key": key,
        "update_id": "fms-1",
        "service_request_id": str(rid),
        "status": "CLOSED",
        "updated_datetime": "2024-05-01T09:30:00+09:00",
        "description": "Fixed by the contractor",
        "email": "officer@example.org",
        "first_name": "Jo",
        "last_name": "Lee",
    }
    first = client.post(f"{V2}/servicerequestupdates.{fmt}", data=form)
    again = client.post(f"{V2}/servicerequestupdates.{fmt}", data=form)
    assert first.status_code == again.status_code == 200, first.text

    def update_id(r):
        return r.json()[0]["update_id"] if fmt == "json" else xml(r).findtext("request_update/update_id")

    assert update_id(first) == update_id(again)
    assert fmt == "json" or xml(first).tag == "service_request_updates"
    with db.session() as s:
        assert S.get_report(s, rid).status == "fixed"
        assert [u.external_id for u in S.timeline(s, rid) if u.external_id] == ["fms-1"]
    reopen = dict(form, update_id="fms-2", status="OPEN", description="It came back")
    assert client.post(f"{V2}/servicerequestupdates.{fmt}", data=reopen).status_code == 200
    with db.session() as s:
        assert S.get_report(s, rid).status == "open"


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_updates_are_refused(client, db, key, fmt):
    rid = new_id(client, key)
    base = {"api_key": key, "update_id": "u1", "service_request_id": str(rid), "status": "OPEN", "description": "Hello"}
    before = counts(db)
    for change, status, words in [
        ({"api_key": None}, 403, "api_key"),
        ({"api_key": "sc_wrong"}, 403, "api_key"),
        ({"update_id": None}, 400, "update_id"),
        ({"description": ""}, 400, "description"),
        ({"status": "MAYBE"}, 400, "status"),
        ({"updated_datetime": "soon"}, 400, "updated_datetime"),
        ({"service_request_id": "999999"}, 404, "999999"),
        ({"description": "x" * 4001}, 400, "4000"),
    ]:
        form = {k: v for k, v in {**base, **change}.items() if v is not None}
        assert_error(client.post(f"{V2}/servicerequestupdates.{fmt}", data=form), fmt, status, words)
    assert counts(db) == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_updates_are_published_for_partners(client, db, key, fmt):
    boss = admin(db)
    rid = new_id(client, key)
    with db.session() as s:
        S.transition(s, boss, rid, "in_progress", text="Crew sent <today>")
        S.add_note(s, boss, rid, "secret internal note")
    client.post(
        f"{V2}/servicerequestupdates.json",
        data={
            "api_key": key,
            "update_id": "p1",
            "service_request_id": str(rid),
            "status": "OPEN",
            "description": "mine",
        },
    )
    r = client.get(f"{V2}/servicerequestupdates.{fmt}")
    assert r.status_code == 200
    if fmt == "json":
        updates = r.json()
    else:
        root = xml(r)
        assert root.tag == "service_request_updates"
        updates = [{e.tag: e.text for e in u} for u in root.findall("request_update")]
    assert [u["description"] for u in updates] == ["Crew sent <today>"]  # not the partner's own, not internal
    (u,) = updates
    assert set(u) == {
        "update_id",
        "service_request_id",
        "status",
        "updated_datetime",
        "description",
        "media_url",
        "external_status_code",
    }
    assert (u["service_request_id"], u["status"], u["external_status_code"]) == (str(rid), "IN_PROGRESS", "in_progress")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get(f"{V2}/servicerequestupdates.json", params={"start_date": later}).json() == []
    assert_error(client.get(f"{V2}/servicerequestupdates.{fmt}?start_date=soon"), fmt, 400, "start_date")


# --- the CLI ----------------------------------------------------------------------------------------------


def test_keys_are_created_listed_and_revoked_from_the_cli(client, db, db_url, monkeypatch, tmp_path):
    from smartcity.cli import main
    from smartcity.settings import get_settings

    monkeypatch.setenv("SMARTCITY_DATABASE_URL", db_url)
    monkeypatch.setenv("SMARTCITY_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        created = runner.invoke(main, ["open311", "keys", "create", "FixMyStreet"], catch_exceptions=False)
        assert created.exit_code == 0
        new_key = created.stdout.strip()
        assert new_key.startswith("sc_")
        assert new_id(client, new_key)
        listed = runner.invoke(main, ["open311", "keys", "list"]).stdout
        (line,) = [line for line in listed.splitlines() if "FixMyStreet" in line]
        key_id = line.split("\t")[0]
        assert "active" in line and new_key not in listed
        assert runner.invoke(main, ["open311", "keys", "revoke", key_id]).exit_code == 0
        assert "revoked" in runner.invoke(main, ["open311", "keys", "list"]).stdout
        assert_error(post(client, new_key), "json", 403, "api_key")
        other = make_key(db)  # a platform key is not an Open311 key
        with db.session() as s:
            from smartcity.core import accounts

            other_id = accounts.find_api_key(s, other).id
        refused = runner.invoke(main, ["open311", "keys", "revoke", str(other_id)])
        assert refused.exit_code == 2 and "no Open311 key" in refused.output
    finally:
        get_settings.cache_clear()


def test_anonymous_service_reports_are_listed_too(client, db):
    """Reports filed on the web appear in Open311 without anything about their reporter."""
    with db.session() as s:
        rid = S.create_report(
            s,
            ANONYMOUS,
            S.NewReport(
                "roads-pothole",
                *CITY_HALL,
                title="Hole",
                description="by the bus stop",
                attributes={"size": "small"},
                contact=S.Contact("Park", "park@example.org", None),
            ),
        ).report.id
    (one,) = client.get(f"{V2}/requests/{rid}.json").json()
    assert one["description"] == "Hole\n\nby the bus stop" and "park" not in str(one).lower()


def test_a_wrong_method_is_answered_in_open311_format(client):
    r = client.delete("/open311/v2/services.json")
    assert r.status_code == 405
    body = r.json()
    assert isinstance(body, list) and body[0]["code"] == 405 and body[0]["description"]
