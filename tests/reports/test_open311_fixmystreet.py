"""A FixMyStreet as our Open311 partner, on both stores: its requests reproduced field by field as its Open311
client (perllib/Open311.pm) sends them — url-encoded POSTs to requests.xml and servicerequestupdates.xml with
api_key and jurisdiction_id, repeated keys for a multi-select answer or several media_url, multipart photo1…N
when it uploads files — and what becomes of every field: nothing it sends is lost without a word."""

from __future__ import annotations

import io
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import pytest
from PIL import Image
from sqlalchemy import select

from smartcity.core.auth import identity_of_user
from smartcity.core.models import User
from smartcity.reports import service as S
from smartcity.reports.models import ReportContact, ReportUpdate
from tests.conftest import make_key, make_settings, make_user
from tests.reports.helpers import counts

V2 = "/open311/v2"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def fms_request(key: str, service_code: str = "roads-pothole", **extra) -> list[tuple[str, str]]:
    """The fields of FixMyStreet's send_service_request, in its order (a title/detail/url description, the
    name split in two, coordinates to six places), then jurisdiction_id and api_key as its _request adds them."""
    pairs = [
        ("description", "Deep hole\n\nBy the bus stop, cars swerve\n\nhttps://fms.example.org/report/4242\n"),
        ("service_code", service_code),
        ("first_name", "Minji"),
        ("last_name", "Kim"),
        ("email", "minji@example.org"),
        ("lat", "37.566500"),
        ("long", "126.978000"),
    ]
    for name, value in extra.items():
        values = value if isinstance(value, list) else [value]  # an array ref: the key repeated, as LWP does
        pairs += [(name, v) for v in values]
    return pairs + [("jurisdiction_id", "seoul"), ("api_key", key)]


def send(client, path: str, pairs: list[tuple[str, str]]):
    return client.post(f"{V2}/{path}", content=urlencode(pairs).encode(), headers=FORM)


def xml_items(response, item: str) -> list[dict]:
    root = ET.fromstring(response.content)
    return [{e.tag: e.text for e in node} for node in root.findall(item)]


def errors(response) -> list[tuple[int, str]]:
    root = ET.fromstring(response.content)
    assert root.tag == "errors", response.text
    return [(int(e.findtext("code")), e.findtext("description")) for e in root.findall("error")]


def filed(response) -> dict:
    assert response.status_code == 201, response.text
    (out,) = xml_items(response, "request")
    return out


def jpeg(size) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 90, 200)).save(buf, "JPEG")
    return buf.getvalue()


# --- 12: attributes -----------------------------------------------------------------------------------------


def test_a_multi_select_answer_sent_as_repeated_keys_keeps_every_value(client, db, key):
    r = send(
        client,
        "requests.xml",
        fms_request(key, "cleaning-illegal-dumping", **{"attribute[waste_types]": ["household", "food"]}),
    )
    rid = int(filed(r)["service_request_id"])
    with db.session() as s:
        assert S.get_report(s, rid).attributes == {"waste_types": ["household", "food"]}
    (one,) = client.get(f"{V2}/requests/{rid}.json?extensions=true").json()
    assert one["attributes"] == [{"code": "waste_types", "value": "household,food"}]


def test_a_single_choice_answer_sent_twice_is_refused_and_nothing_stored(client, db, key):
    before = counts(db)
    r = send(client, "requests.xml", fms_request(key, **{"attribute[size]": ["small", "large"]}))
    assert r.status_code == 400
    (error,) = errors(r)
    assert error[0] == 400 and error[1].startswith("attribute[size]:") and "one value" in error[1]
    assert counts(db) == before


# --- 13: media ----------------------------------------------------------------------------------------------


def test_media_urls_are_kept_and_shown_as_given(client, db, key):
    links = ["https://fms.example.org/photo/4242.0.full.jpeg?abc", "https://fms.example.org/photo/4242.1.full.jpeg"]
    r = send(client, "requests.xml", fms_request(key, **{"attribute[size]": "large", "media_url": links}))
    rid = int(filed(r)["service_request_id"])
    with db.session() as s:
        assert S.get_report(s, rid).media_urls == links
    (plain,) = client.get(f"{V2}/requests/{rid}.json").json()
    assert plain["media_url"] == links[0]
    (ext,) = xml_items(client.get(f"{V2}/requests/{rid}.xml?extensions=true"), "request")
    root = ET.fromstring(client.get(f"{V2}/requests/{rid}.xml?extensions=true").content)
    assert [m.text for m in root.findall("request/media_urls/media_url")] == links
    assert ext["media_url"] == links[0]
    page = client.get(f"/reports/{rid}")
    assert page.status_code == 200
    assert 'href="https://fms.example.org/photo/4242.0.full.jpeg?abc"' in page.text
    assert (
        "kept as a link"
        in client.post(  # the notice says what became of them (English asked for)
            f"{V2}/requests.json",
            content=urlencode(
                fms_request(key, **{"attribute[size]": "large", "locale": "en", "media_url": links[1]})
            ).encode(),
            headers=FORM,
        ).json()[0]["service_notice"]
    )


def test_a_malformed_media_url_is_dropped_with_a_notice(client, db, key):
    pairs = fms_request(key, **{"attribute[size]": "large", "media_url": "javascript:alert(1)", "locale": "en"})
    r = client.post(f"{V2}/requests.json", content=urlencode(pairs).encode(), headers=FORM)
    assert r.status_code == 201, r.text
    out = r.json()[0]
    assert "media_url dropped" in out["service_notice"] and "javascript:alert(1)" in out["service_notice"]
    with db.session() as s:
        assert S.get_report(s, int(out["service_request_id"])).media_urls is None
    assert "javascript:" not in client.get(f"/reports/{out['service_request_id']}").text


def test_fixmystreet_multipart_photos_become_the_reports_photos(client, db, key):
    """FixMyStreet configured to upload files posts multipart form-data with photo1, photo2, …"""
    data = dict(fms_request(key, **{"attribute[size]": "large", "locale": "en"}))
    files = [
        ("photo2", ("b.jpeg", jpeg((40, 30)), "image/jpeg")),
        ("photo1", ("a.jpeg", jpeg((90, 60)), "image/jpeg")),
        ("leaflet", ("l.pdf", b"%PDF-1.4", "application/pdf")),
    ]
    r = client.post(f"{V2}/requests.json", data=data, files=files)
    assert r.status_code == 201, r.text
    out = r.json()[0]
    rid = int(out["service_request_id"])
    assert "not kept: leaflet" in out["service_notice"]  # a file it sent that is not a photo field: said so
    with db.session() as s:
        photos = S.photos_of(s, rid)
        assert [(p.width, p.height) for p in photos] == [(90, 60), (40, 30)]  # photo1 first
    (one,) = client.get(f"{V2}/requests/{rid}.json?extensions=true").json()
    assert one["media_url"] == f"http://testserver/api/reports/photos/{photos[0].id}.jpg"
    assert len(one["media_urls"]) == 2


def test_fields_not_kept_are_named_in_the_notice(client, key):
    pairs = fms_request(
        key, **{"attribute[size]": "large", "deviceid": "pothole-crew", "account_id": "77", "locale": "en"}
    )
    r = client.post(f"{V2}/requests.json", content=urlencode(pairs).encode(), headers=FORM)
    assert r.status_code == 201
    assert "not kept: deviceid, account_id" in r.json()[0]["service_notice"]


# --- 15: status codes, each error once ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_a_missing_or_invalid_api_key_is_403(client, key, fmt):
    for pairs in ([p for p in fms_request(key) if p[0] != "api_key"], fms_request("sc_not-a-key")):
        r = send(client, f"requests.{fmt}", pairs)
        assert r.status_code == 403
        body = errors(r) if fmt == "xml" else [(e["code"], e["description"]) for e in r.json()]
        assert len(body) == 1 and body[0][0] == 403 and "api_key" in body[0][1]
    update = [("service_request_id", "1"), ("status", "OPEN"), ("description", "x"), ("update_id", "9")]
    assert send(client, f"servicerequestupdates.{fmt}", update).status_code == 403


def test_an_unknown_service_code_on_post_is_404(client, db, key):
    before = counts(db)
    r = send(client, "requests.xml", fms_request(key, "no-such-service"))
    assert r.status_code == 404
    assert errors(r) == [(404, "unknown service_code 'no-such-service'")]
    assert counts(db) == before


def test_each_error_is_reported_once(client, key):
    r = send(client, "requests.xml", [p for p in fms_request(key) if p[0] != "service_code"])
    assert errors(r) == [(400, "service_code: is required")]
    r = send(client, "requests.xml", fms_request(key))  # the pothole's required size is missing
    assert errors(r) == [(400, "attribute[size]: is required")]
    r = send(client, "requests.xml", fms_request(key, **{"attribute[size]": "enormous", "attribute[colour]": "red"}))
    assert sorted(d for _, d in errors(r)) == [
        "attribute[colour]: this category has no such attribute",
        "attribute[size]: must be one of small, medium, large",
    ]


# --- 16: optional contact fields ----------------------------------------------------------------------------


@pytest.mark.parametrize("phone", ["02-120", "120", "(212) 555-1234", "+82 10-1234-5678"])
def test_phone_numbers_are_kept_as_given(client, db, key, phone):
    rid = int(
        filed(send(client, "requests.xml", fms_request(key, **{"attribute[size]": "large", "phone": phone})))[
            "service_request_id"
        ]
    )
    with db.session() as s:
        assert s.get(ReportContact, rid).phone == phone


def test_a_malformed_optional_field_is_dropped_with_a_notice(client, db, key):
    pairs = [
        (k, "not-an-email" if k == "email" else v)
        for k, v in fms_request(key, **{"attribute[size]": "large", "phone": "call me maybe", "locale": "en"})
    ]
    r = client.post(f"{V2}/requests.json", content=urlencode(pairs).encode(), headers=FORM)
    assert r.status_code == 201, r.text
    notice = r.json()[0]["service_notice"]
    assert "email dropped: is not an email address" in notice and "phone dropped: is not a phone number" in notice
    with db.session() as s:
        contact = s.get(ReportContact, int(r.json()[0]["service_request_id"]))
        assert (contact.name, contact.email, contact.phone) == ("Minji Kim", None, None)


# --- 14: partner updates ------------------------------------------------------------------------------------


def fms_update(key: str, rid: int, update_id: str, status: str, text: str, **extra) -> list[tuple[str, str]]:
    """The fields of FixMyStreet's post_service_request_update (extended statuses on)."""
    pairs = [
        ("updated_datetime", "2024-05-01T09:30:00+09:00"),
        ("service_request_id", str(rid)),
        ("status", status),
        ("description", text),
        ("last_name", "-"),
        ("first_name", "Officer"),
        ("email", "officer@example.org"),
        ("update_id", update_id),
    ]
    return pairs + list(extra.items()) + [("jurisdiction_id", "seoul"), ("api_key", key)]


def new_request(client, key) -> int:
    return int(
        filed(send(client, "requests.xml", fms_request(key, **{"attribute[size]": "large"})))["service_request_id"]
    )


def post_update(client, key, rid, update_id, status, text, **extra) -> dict:
    r = send(client, "servicerequestupdates.xml", fms_update(key, rid, update_id, status, text, **extra))
    assert r.status_code == 200, r.text
    (out,) = xml_items(r, "request_update")
    return out


def state(db, rid) -> tuple[str, bool, list[str]]:
    with db.session() as s:
        report = S.get_report(s, rid)
        texts = [u.text for u in S.timeline(s, rid) if u.external_id]
        return report.status, report.fixed_at is not None, texts


SEQUENCES = [
    # (statuses FixMyStreet sends, in order) → our status after the last, and whether it counts as fixed
    (["NO_FURTHER_ACTION"], "closed", False),
    (["FIXED", "NO_FURTHER_ACTION"], "closed", False),
    (["CANCELLED"], "closed", False),
    (["CLOSED"], "fixed", True),
    (["FIXED", "INVESTIGATING"], "acknowledged", False),
    (["FIXED", "REOPEN"], "open", False),
    (["NOT_COUNCILS_RESPONSIBILITY", "INTERNAL_REFERRAL"], "referred", False),
    (["FOR_TRIAGE"], "open", False),
    (["ACTION_SCHEDULED", "FOR_TRIAGE"], "in_progress", False),
]


@pytest.mark.parametrize("statuses, expected, fixed", SEQUENCES, ids=["-".join(s[0]) for s in SEQUENCES])
def test_extended_statuses_follow_the_workflow_and_keep_every_text(client, db, key, statuses, expected, fixed):
    rid = new_request(client, key)
    for i, status in enumerate(statuses):
        out = post_update(client, key, rid, f"fms-{i}", status, f"text {i} <{status}>")
    assert state(db, rid) == (expected, fixed, [f"text {i} <{s}>" for i, s in enumerate(statuses)])
    assert out["service_notice"] is None
    (one,) = client.get(f"{V2}/requests/{rid}.json?extensions=true").json()
    assert one["detailed_status"] == out["status"] != ""


def test_every_route_a_partner_status_takes_is_one_the_workflow_allows():
    for current in S.STATUSES:
        for target in S.STATUSES:
            route = S.status_route(current, target)
            if route is None:  # no way: not a direct step, and no reopen first (or a duplicate)
                assert target not in S.TRANSITIONS[current] and target != current
                assert current == "duplicate" or current in S.OPEN_STATUSES or target not in S.TRANSITIONS["open"]
                continue
            steps = [current, *route]
            assert all(b in S.TRANSITIONS[a] for a, b in zip(steps[:-1], steps[1:], strict=True))
            assert steps[-1] == target
            assert len(route) <= 2 and (len(route) < 2 or route[0] == "open")


def test_a_transition_the_workflow_refuses_keeps_the_text_and_the_status(client, db, key):
    make_user(db, "boss", "admin")
    with db.session() as s:
        boss = identity_of_user(s.scalar(select(User).where(User.username == "boss")), "session")
    parent, child = new_request(client, key), new_request(client, key)
    with db.session() as s:
        S.merge(s, boss, parent, [child], text="Same hole")
    out = post_update(client, key, child, "fms-1", "FIXED", "Filled in on Tuesday")
    assert out["status"] == "DUPLICATE" and "duplicate to fixed" in out["service_notice"]
    dup = post_update(client, key, parent, "fms-2", "DUPLICATE", "Same as another one")
    assert dup["status"] == "OPEN" and "needs the report it duplicates" in dup["service_notice"]
    assert state(db, child) == ("duplicate", False, ["Filled in on Tuesday"])
    assert state(db, parent)[0::2] == ("open", ["Same as another one"])
    public = [u["description"] for u in client.get(f"{V2}/requests/{child}.json?extensions=true").json()[0]["notes"]]
    assert "Filled in on Tuesday" in public
    again = post_update(client, key, child, "fms-1", "FIXED", "Filled in on Tuesday")  # idempotent on update_id
    assert again["update_id"] == out["update_id"]
    with db.session() as s:
        assert s.scalar(select(ReportUpdate.id).where(ReportUpdate.external_id == "fms-1")) == int(out["update_id"])


def test_an_updates_media_url_is_kept(client, db, key):
    rid = new_request(client, key)
    link = "https://fms.example.org/photo/c/77.0.full.jpeg"
    out = post_update(client, key, rid, "fms-9", "IN_PROGRESS", "Crew on site", media_url=link)
    with db.session() as s:
        entry = s.get(ReportUpdate, int(out["update_id"]))
        assert (entry.media_url, entry.text, S.get_report(s, rid).status) == (link, "Crew on site", "in_progress")
    assert link in client.get(f"/reports/{rid}").text


def test_a_malformed_media_url_on_an_update_is_dropped_with_a_notice_and_the_text_kept(client, db, key):
    rid = new_request(client, key)
    out = post_update(client, key, rid, "fms-3", "INVESTIGATING", "Looking into it", media_url="ftp://x/y.jpg")
    assert "media_url dropped" in out["service_notice"] and out["status"] == "INVESTIGATING"
    with db.session() as s:
        entry = s.get(ReportUpdate, int(out["update_id"]))
        assert (entry.text, entry.media_url) == ("Looking into it", None)


def test_an_unknown_status_is_still_refused(client, db, key):
    rid = new_request(client, key)
    before = counts(db)
    r = send(client, "servicerequestupdates.xml", fms_update(key, rid, "u1", "MAYBE", "hello"))
    assert r.status_code == 400 and len(errors(r)) == 1 and "MAYBE" in errors(r)[0][1]
    assert counts(db) == before


# --- 13: the optional background fetch of media_url -----------------------------------------------------------


class Pictures(BaseHTTPRequestHandler):
    """A partner's photo server on this machine: it counts every request it gets."""

    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        Pictures.hits.append(self.path)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok.jpeg")
            self.end_headers()
            return
        kind, body = {
            "/ok.jpeg": ("image/jpeg", jpeg((120, 80))),
            "/page": ("text/html", b"<html>hi</html>"),
            "/big.jpeg": ("image/jpeg", jpeg((50, 50)) + b"\0" * 80_000),
        }.get(self.path, ("", b""))
        self.send_response(200 if kind else 404)
        self.send_header("Content-Type", kind or "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def pictures():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pictures)
    Pictures.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.server_address[1]
    server.shutdown()
    server.server_close()


def partner_client(db, tmp_path, **settings):
    from fastapi.testclient import TestClient

    from smartcity.app import create_app

    config = make_settings(db.url, tmp_path, reports_fetch_media_urls=True, run_jobs=False, **settings)
    return TestClient(create_app(config, db)), config


def notes(db, rid) -> list[str]:
    with db.session() as s:
        return [u.text for u in S.timeline(s, rid, include_internal=True) if not u.public]


def test_a_media_url_to_a_loopback_or_private_address_is_never_requested(db, tmp_path, pictures):
    base, port = pictures
    links = [
        f"{base}/ok.jpeg",
        f"http://localhost:{port}/ok.jpeg",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/x.jpeg",
    ]
    client, config = partner_client(db, tmp_path)
    with client:
        key = make_key(db, scope="open311")
        r = send(client, "requests.xml", fms_request(key, **{"attribute[size]": "large", "media_url": links}))
        rid = int(filed(r)["service_request_id"])
        assert (
            "fetched in the background"
            in client.post(
                f"{V2}/requests.json",
                content=urlencode(
                    fms_request(key, **{"attribute[size]": "large", "locale": "en", "media_url": links[0]})
                ).encode(),
                headers=FORM,
            ).json()[0]["service_notice"]
        )
    assert S.fetch_media(db, config) == 2
    assert Pictures.hits == []  # not one request reached the loopback server
    with db.session() as s:
        report = S.get_report(s, rid)
        assert (report.media_fetch, report.photo_count, report.media_urls) == ("refused", 0, links)
    why = notes(db, rid)
    assert len(why) == 4 and all("private, loopback or link-local" in w for w in why)
    assert S.fetch_media(db, config) == 0  # handled once


def test_an_allowed_network_is_fetched_within_the_limits(db, tmp_path, pictures):
    base, _ = pictures
    links = [f"{base}/ok.jpeg", f"{base}/page", f"{base}/big.jpeg", f"{base}/redirect", f"{base}/missing.jpeg"]
    client, config = partner_client(
        db, tmp_path, reports_fetch_media_allow="127.0.0.0/8", reports_max_photo_bytes=50_000
    )
    with client:
        key = make_key(db, scope="open311")
        rid = int(
            filed(send(client, "requests.xml", fms_request(key, **{"attribute[size]": "large", "media_url": links})))[
                "service_request_id"
            ]
        )
        assert S.fetch_media(db, config) == 1
        with db.session() as s:
            report = S.get_report(s, rid)
            photos = S.photos_of(s, rid)
            assert (report.media_fetch, report.photo_count) == ("refused", 2)
            assert [(p.width, p.height) for p in photos] == [(120, 80), (120, 80)]  # ok.jpeg, then via the redirect
        why = " | ".join(notes(db, rid))
        assert "not an image (text/html)" in why and "larger than 50000 bytes" in why and "HTTP 404" in why
        (one,) = client.get(f"{V2}/requests/{rid}.json?extensions=true").json()
        assert one["media_url"].startswith("http://testserver/api/reports/photos/")
        assert one["media_urls"][2:] == links  # the links stay, as given, after the photos


# --- media_url is the reporter's photo, never the after-photo of a fix ----------------------------------------


def mark_fixed_with_photo(db, rid: int) -> None:
    make_user(db, "roadie", "staff", department="11020-roads")
    with db.session() as s:
        user = s.scalar(select(User).where(User.username == "roadie"))
        S.transition(
            s,
            identity_of_user(user, "session"),
            rid,
            "fixed",
            text="Filled",
            after_photo=S.Upload("after.jpeg", jpeg((30, 20)), "image/jpeg"),
        )


def test_media_url_is_the_reporters_photo_even_when_fetched_after_the_fix(db, tmp_path, pictures):
    """The partner's link is fetched in the background, after staff marked it fixed with an after-photo: the
    after-photo is stored first, yet media_url (and media_urls) name the reporter's photo alone."""
    base, _ = pictures
    client, config = partner_client(db, tmp_path, reports_fetch_media_allow="127.0.0.0/8")
    with client:
        key = make_key(db, scope="open311")
        pairs = fms_request(key, **{"attribute[size]": "large", "media_url": f"{base}/ok.jpeg"})
        rid = int(filed(send(client, "requests.xml", pairs))["service_request_id"])
        mark_fixed_with_photo(db, rid)
        assert S.fetch_media(db, config) == 1
        with db.session() as s:
            (mine,) = S.photos_of(s, rid)
            (after,) = S.photos_of(s, rid, "after")
        assert (mine.width, mine.height, after.width) == (120, 80, 30)
        mine_url = f"http://testserver/api/reports/photos/{mine.id}.jpg"
        for path in (f"requests/{rid}.json?extensions=true", "requests.json?extensions=true"):
            (one,) = [x for x in client.get(f"{V2}/{path}").json() if x["service_request_id"] == str(rid)]
            assert one["media_url"] == mine_url
            assert one["media_urls"] == [mine_url, f"{base}/ok.jpeg"]
        (plain,) = xml_items(client.get(f"{V2}/requests/{rid}.xml"), "request")
        assert plain["media_url"] == mine_url


def test_a_report_with_only_an_after_photo_has_no_media_url(client, db, key):
    out = filed(send(client, "requests.xml", fms_request(key, **{"attribute[size]": "large"})))
    rid = int(out["service_request_id"])
    mark_fixed_with_photo(db, rid)
    (one,) = client.get(f"{V2}/requests/{rid}.json?extensions=true").json()
    assert one["status"] == "closed" and one["media_url"] is None and one["media_urls"] == []
    (listed,) = [x for x in client.get(f"{V2}/requests.json").json() if x["service_request_id"] == str(rid)]
    assert listed["media_url"] is None
