"""The Community Mapping service on both stores: taxonomy, creating reports (and refusing bad ones without
leaving anything behind), photos, routing, nearby duplicates and supports."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from smartcity.core import audit
from smartcity.core.auth import ANONYMOUS
from smartcity.core.context import attach
from smartcity.core.errors import InvalidInput, NotAuthenticated, OutsideCity, PermissionDenied, TooLarge
from smartcity.core.notify import Notification
from smartcity.reports import service as S
from smartcity.reports.models import Category, CategoryGroup, Report, ReportContact, ReportPhoto, ReportUpdate
from tests.conftest import make_settings, make_user
from tests.reports.helpers import CITY_HALL, GANGNAM, file_report, jpeg, new, who


def counts(db) -> dict:
    with db.session() as s:
        return {
            m.__tablename__: s.scalar(select(func.count()).select_from(m))
            for m in (Report, ReportContact, ReportPhoto, ReportUpdate, Notification)
        }


def uploaded_files(db) -> list[Path]:
    root = Path(db.settings.var_dir) / "uploads"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# --- taxonomy ------------------------------------------------------------------------------------------


def test_the_taxonomy_has_seouls_12_fields_and_67_items_and_seeding_is_idempotent(rdb):
    with rdb.session() as s:
        groups = S.list_groups(s)
        cats = S.list_categories(s)
        assert len(groups) == 12 and len(cats) == 67
        per_group = {g.code: sum(c.group_code == g.code for c in cats) for g in groups}
        assert per_group == {
            "traffic": 8,
            "roads": 9,
            "cleaning": 7,
            "housing": 3,
            "flood": 4,
            "streets": 3,
            "health": 7,
            "parks": 11,
            "environment": 7,
            "economy": 3,
            "fire": 1,
            "other": 4,
        }
        assert S.seed(s) == {"groups": 0, "categories": 0, "templates": 0}
    with rdb.session() as s:
        assert s.scalar(select(func.count()).select_from(Category)) == 67
        assert s.scalar(select(func.count()).select_from(CategoryGroup)) == 12
        datatypes = {a["datatype"] for c in S.list_categories(s) for a in c.attributes}
        assert datatypes == set(S.DATATYPES)
        view = S.category_view(S.get_category(s, "roads-pothole"), "en")
        assert view["name"] == "Pothole" and view["metadata"] is True
        size = view["attributes"][0]
        assert size["code"] == "size" and size["required"] and size["datatype"] == "singlevaluelist"
        assert [v["key"] for v in size["values"]] == ["small", "medium", "large"]


# --- creating reports ----------------------------------------------------------------------------------


def test_a_report_is_located_routed_timed_and_recorded(rdb):
    with rdb.session() as s:
        created = S.create_report(
            s,
            ANONYMOUS,
            new(
                description="Near the fountain",
                address_string="세종대로 110",
                attributes={"size": "medium", "depth_cm": "12.5"},
                contact=S.Contact("Kim", "kim@example.org", None),
            ),
        )
        rid = created.report.id
        assert not created.repeated and len(created.feedback_token) == 32
    with rdb.session() as s:
        r = S.get_report(s, rid)
        assert (r.district_code, r.unit.code, r.status) == ("11020", "11020-roads", "open")
        assert r.attributes == {"size": "medium", "depth_cm": 12.5}
        assert r.due_at - r.created_at == timedelta(days=3)  # the pothole's service level
        assert r.reporter_id is None and r.public_name is None  # anonymous unless the citizen opts in
        assert [u.kind for u in S.timeline(s, rid)] == ["created"]
        assert [e.action for e in audit.entries(s, object_type="report", object_id=rid)] == ["create"]
        mail = s.scalars(select(Notification)).all()
        assert [(m.channel, m.to, m.topic) for m in mail] == [("email", "kim@example.org", "report.received")]
        assert "신고" in mail[0].subject  # in the report's language (Korean by default)
        view = S.public_view(r, "en")
        assert "kim" not in str(view).lower() and view["category_name"] == "Pothole"


def test_html_in_text_is_stored_as_text(rdb):
    rid = file_report(rdb, title="<script>alert(1)</script>", description="<b>bold</b> & <i>co</i>")
    with rdb.session() as s:
        r = S.get_report(s, rid)
        assert r.title == "<script>alert(1)</script>" and r.description == "<b>bold</b> & <i>co</i>"


def test_a_citizen_may_show_their_name(rdb):
    make_user(rdb, "minji", "citizen", display_name="Kim Minji")
    rid = file_report(rdb, who(rdb, "minji"), show_name=True)
    with rdb.session() as s:
        r = S.get_report(s, rid)
        assert r.public_name == "Kim Minji" and r.reporter_id is not None


BAD = [
    (dict(where=(35.1796, 129.0756)), OutsideCity, "outside_city"),  # Busan
    (dict(where=("north", 126.9)), InvalidInput, "invalid_coordinates"),
    (dict(category="no-such-thing"), InvalidInput, "unknown_category"),
    (dict(attributes={}), InvalidInput, "missing_attribute"),
    (dict(attributes={"size": "enormous"}), InvalidInput, "invalid_attribute"),
    (dict(attributes={"size": "small", "depth_cm": "deep"}), InvalidInput, "invalid_attribute"),
    (dict(attributes={"size": "small", "colour": "red"}), InvalidInput, "unknown_attribute"),
    (dict(category="traffic-illegal-parking", attributes={"seen_at": "yesterday"}), InvalidInput, "invalid_attribute"),
    (
        dict(category="environment-construction-noise", attributes={"times": ["night", "dawn"]}),
        InvalidInput,
        "invalid_attribute",
    ),
    (dict(description="x" * 4001), InvalidInput, "too_long"),
    (dict(title="   "), InvalidInput, "required"),
    (dict(contact=S.Contact(email="not-an-email")), InvalidInput, "invalid_email"),
    (dict(photos=[S.Upload("photo.jpg", b"%PDF-1.4 not a picture")]), InvalidInput, "not_an_image"),
    (dict(photos=[S.Upload("fake.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100)]), InvalidInput, "not_an_image"),
    (dict(photos=[S.Upload("big.jpg", jpeg(2000, 2000) + b"\0" * 300_000)]), TooLarge, "photo_too_large"),
]


@pytest.mark.parametrize("kwargs, error, code", BAD, ids=[b[2] + str(i) for i, b in enumerate(BAD)])
def test_bad_reports_are_refused_and_nothing_is_half_stored(rdb, kwargs, error, code):
    attach(rdb, make_settings(rdb.url, Path(rdb.settings.var_dir).parent, reports_max_photo_bytes=300_000))
    before = counts(rdb)
    good_photo = S.Upload("ok.jpg", jpeg())
    kwargs = dict(kwargs)
    kwargs.setdefault("photos", [])
    kwargs["photos"] = [good_photo, *kwargs["photos"]]  # a valid photo first: it must not be left behind
    with pytest.raises(error) as caught, rdb.session() as s:
        S.create_report(s, ANONYMOUS, new(**kwargs))
    assert caught.value.code == code
    assert counts(rdb) == before
    assert uploaded_files(rdb) == []


def test_a_failure_after_the_photos_were_written_removes_them(rdb):
    with pytest.raises(RuntimeError), rdb.session() as s:
        S.create_report(s, ANONYMOUS, new(photos=[S.Upload("a.jpg", jpeg())]))
        assert len(uploaded_files(rdb)) == 2  # photo and thumbnail, before the transaction ends
        raise RuntimeError("the connection dropped before commit")
    assert uploaded_files(rdb) == []
    assert counts(rdb)["reports"] == 0


def test_photos_are_reencoded_without_exif_and_get_a_thumbnail(rdb):
    png = io.BytesIO()
    Image.new("RGBA", (3000, 1000), (0, 0, 255, 128)).save(png, "PNG")
    rid = file_report(rdb, photos=[S.Upload("x.jpg", jpeg(exif=True)), S.Upload("y", png.getvalue())])
    with rdb.session() as s:
        photos = S.photos_of(s, rid)
        assert [p.position for p in photos] == [0, 1] and S.get_report(s, rid).photo_count == 2
        for p in photos:
            main, thumb = S.photo_file(s, p.id), S.photo_file(s, p.id, thumb=True)
            with Image.open(main) as img:
                assert img.format == "JPEG" and not img.getexif() and "exif" not in img.info
                assert max(img.size) <= 2048
            with Image.open(thumb) as t:
                assert max(t.size) <= 320
        assert b"SecretCam" not in S.photo_file(s, photos[0].id).read_bytes()
        assert (photos[1].width, photos[1].height) == (2048, 683)


def test_a_repeated_submission_with_the_same_idempotency_key_stores_nothing_new(rdb):
    with rdb.session() as s:
        first = S.create_report(s, ANONYMOUS, new(idempotency_key="abc-123", photos=[S.Upload("a.jpg", jpeg())]))
    before, files = counts(rdb), len(uploaded_files(rdb))
    with rdb.session() as s:
        again = S.create_report(s, ANONYMOUS, new(idempotency_key="abc-123", photos=[S.Upload("a.jpg", jpeg())]))
    assert again.repeated and again.report.id == first.report.id
    assert counts(rdb) == before and len(uploaded_files(rdb)) == files
    other = file_report(rdb, idempotency_key="abc-124")
    assert other != first.report.id


def test_anonymous_reporting_can_be_switched_off(rdb, tmp_path):
    attach(rdb, make_settings(rdb.url, tmp_path, reports_allow_anonymous=False))
    with pytest.raises(NotAuthenticated), rdb.session() as s:
        S.create_report(s, ANONYMOUS, new())


# --- routing ---------------------------------------------------------------------------------------------


def test_routing_defaults_rules_and_fallback(rdb):
    make_user(rdb, "boss", "admin")
    admin = who(rdb, "boss")
    with rdb.session() as s:
        cat = S.get_category(s, "roads-pothole")
        assert S.route_for(s, cat, "11230").code == "11230-roads"
        assert S.route_for(s, S.get_category(s, "fire-hazard"), "11230").code == "city-fire"
        S.set_route(s, admin, "roads-pothole", None, "city-transport")
        S.set_route(s, admin, "roads-pothole", "11230", "11230-streets")
    with rdb.session() as s:
        assert S.route_for(s, cat, "11230").code == "11230-streets"  # the district's rule wins
        assert S.route_for(s, cat, "11020").code == "city-transport"  # then the any-district rule
        table = {(r.category_code, r.district_code): r for r in S.routing_table(s, category="roads-pothole")}
        assert len(table) == 25 and table[("roads-pothole", "11230")].explicit
        S.delete_route(s, admin, "roads-pothole", None)
    with rdb.session() as s:
        assert S.route_for(s, cat, "11020").code == "11020-roads"
        odd = S.save_category(
            s, admin, S.CategoryIn("odd-thing", "other", "이상한 것", "Odd thing", unit_kind="lighthouses")
        )
        assert S.route_for(s, odd, "11020").code == "dasan120"  # no such unit: 120 Dasan takes it
    rid = file_report(rdb, where=GANGNAM)
    with rdb.session() as s:
        assert S.get_report(s, rid).unit.code == "11230-streets"


def test_only_administrators_edit_routing(rdb):
    make_user(rdb, "roadie", "staff", department="11020-roads")
    with pytest.raises(PermissionDenied), rdb.session() as s:
        S.set_route(s, who(rdb, "roadie"), "roads-pothole", None, "11020-streets")
    with pytest.raises(NotAuthenticated), rdb.session() as s:
        S.set_route(s, ANONYMOUS, "roads-pothole", None, "11020-streets")
    make_user(rdb, "boss", "admin")
    with pytest.raises(InvalidInput) as caught, rdb.session() as s:
        S.set_route(s, who(rdb, "boss"), "roads-pothole", None, "11020-control")  # a control room
    assert caught.value.code == "unknown_department"


# --- nearby and supports -----------------------------------------------------------------------------------


def test_nearby_open_reports_of_the_same_category_within_50_m(rdb):
    near = file_report(rdb)
    file_report(rdb, where=(CITY_HALL[0] + 0.0009, CITY_HALL[1]))  # ~100 m north
    file_report(rdb, category="streets-streetlight")  # same place, other category
    closed = file_report(rdb, where=(CITY_HALL[0] + 0.0001, CITY_HALL[1]))
    make_user(rdb, "roadie", "staff", department="11020-roads")
    with rdb.session() as s:
        S.transition(s, who(rdb, "roadie"), closed, "fixed")
    with rdb.session() as s:
        found = S.nearby(s, "roads-pothole", CITY_HALL[0] + 0.0002, CITY_HALL[1] + 0.0002)
        assert [n.id for n in found] == [near] and 20 < found[0].distance_m < 35


def test_supports_count_once_per_supporter(rdb):
    rid = file_report(rdb)
    make_user(rdb, "minji", "citizen")
    with rdb.session() as s:
        assert S.support(s, who(rdb, "minji"), rid) == 1
        assert S.support(s, who(rdb, "minji"), rid) == 1
        assert S.support(s, ANONYMOUS, rid, fingerprint="browser-a") == 2
        assert S.support(s, ANONYMOUS, rid, fingerprint="browser-a") == 2
        assert S.support(s, ANONYMOUS, rid, fingerprint="browser-b") == 3
    with pytest.raises(InvalidInput), rdb.session() as s:
        S.support(s, ANONYMOUS, rid)  # anonymous without a fingerprint


def test_demo_data_covers_every_status_and_district_and_runs_once(rdb):
    from smartcity.core.city import load_profile
    from smartcity.reports.demo_data import COUNT, demo_reports

    profile = load_profile("seoul")
    assert "300 demo reports" in list(demo_reports(rdb, profile))[-1]
    with rdb.session() as s:
        statuses = set(s.scalars(select(Report.status)))
        districts = set(s.scalars(select(Report.district_code)))
        total = s.scalar(select(func.count()).select_from(Report))
        duplicates = s.scalars(select(Report).where(Report.status == "duplicate")).all()
        assert statuses == set(S.STATUSES) and len(districts) == 25 and total > COUNT
        assert all(d.parent_id and d.category_code == s.get(Report, d.parent_id).category_code for d in duplicates)
        assert len(S.list_campaigns(s)) == 2
    assert list(demo_reports(rdb, profile)) == ["reports: demo reports already present"]
    with rdb.session() as s:
        assert s.scalar(select(func.count()).select_from(Report)) == total
