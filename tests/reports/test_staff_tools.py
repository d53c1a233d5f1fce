"""The staff's tools of issue 12 item 6, on both stores: a response template is sent only with the status it
was written for (refused otherwise, nothing stored), bulk actions over the queue, the queue's map, the
after-photo of a fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from smartcity.core.errors import InvalidInput
from smartcity.core.models import AuditEntry
from smartcity.reports import service as S
from smartcity.reports.models import Report, ReportUpdate
from tests.conftest import make_user, signin
from tests.reports.helpers import GANGNAM, file_report, jpeg, who

HTML = {"accept": "text/html"}


def uploads(app) -> list[Path]:
    root = Path(app.state.settings.var_dir) / "uploads"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def csrf(client, path: str = "/reports/new") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def template_id(db, title: str) -> int:
    with db.session() as s:
        return next(t.id for t in S.list_templates(s, who(db, "boss")) if t.title == title)


def stored(db, report_id: int) -> tuple[str, int, int]:
    """A report's status, its timeline entries and its audited changes (reads of the contact aside: the work
    view re-rendered with the error reads it again)."""
    with db.session() as s:
        return (
            s.get(Report, report_id).status,
            s.scalar(select(func.count()).select_from(ReportUpdate).where(ReportUpdate.report_id == report_id)),
            s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(
                    AuditEntry.object_type == "report",
                    AuditEntry.object_id == str(report_id),
                    AuditEntry.action != "read_contact",
                )
            ),
        )


def test_a_template_for_another_status_is_refused_and_nothing_is_stored(rdb):
    make_user(rdb, "boss", "admin")
    make_user(rdb, "roadie", "staff", department="11020-roads")
    rid = file_report(rdb)
    with rdb.session() as s:
        fixed = S.save_template(s, who(rdb, "boss"), S.TemplateIn("Repaired", "고쳤습니다.", "Repaired.", "fixed")).id
        anything = S.save_template(s, who(rdb, "boss"), S.TemplateIn("Thanks", "감사합니다.", "Thank you.")).id
    before = stored(rdb, rid)
    for text in ("", "Written over the template"):
        with rdb.session() as s, pytest.raises(InvalidInput) as refused:
            S.transition(s, who(rdb, "roadie"), rid, "acknowledged", text=text, template_id=fixed)
        assert refused.value.code == "template_status"
        assert refused.value.details[0]["field"] == "template_id"
    assert stored(rdb, rid) == before
    with rdb.session() as s:
        S.transition(s, who(rdb, "roadie"), rid, "acknowledged", template_id=template_id(rdb, "Received"))
        S.transition(s, who(rdb, "roadie"), rid, "in_progress", template_id=anything)  # a template for any status
    with rdb.session() as s:
        S.transition(s, who(rdb, "roadie"), rid, "fixed", template_id=fixed)
    with rdb.session() as s:
        texts = [u.text for u in S.timeline(s, rid) if u.kind == "status"]
    assert texts[1:] == ["감사합니다.", "고쳤습니다."] and texts[0].startswith("신고해 주셔서")  # the report's language


def test_the_work_page_refuses_a_template_of_another_status_in_words(client, app):
    db = app.state.db
    make_user(db, "boss", "admin")
    make_user(db, "roadie", "staff", department="11020-roads")
    rid = file_report(db)
    scheduled = template_id(db, "Work scheduled")  # written for in_progress
    signin(client, "roadie")
    page = client.get(f"/staff/reports/{rid}?lang=en", headers=HTML).text
    assert f'value="{scheduled}"' in page and 'data-status="in_progress"' in page  # what the script filters by
    before = stored(db, rid)
    r = client.post(
        f"/staff/reports/{rid}/status?lang=ko",
        data={"csrf_token": csrf(client), "status": "acknowledged", "template_id": str(scheduled)},
        headers=HTML,
    )
    assert r.status_code == 422
    assert "이 답변 서식은 다른 상태에 쓰는 것입니다" in r.text
    assert stored(db, rid) == before


def test_a_bulk_status_change_is_one_transaction_per_report(rdb):
    make_user(rdb, "boss", "admin")
    make_user(rdb, "roadie", "staff", department="11020-roads")
    ours = [file_report(rdb, title=f"Pothole {n}") for n in range(3)]
    theirs = file_report(rdb, where=GANGNAM)  # Gangnam's roads unit: not roadie's to change
    with rdb.session() as s:
        S.transition(s, who(rdb, "roadie"), ours[2], "fixed")  # a fixed report cannot be acknowledged
    before = {rid: stored(rdb, rid) for rid in (ours[2], theirs)}
    received = template_id(rdb, "Received")
    ids = [*ours, theirs, ours[0]]  # the repeated one counts once
    outcome = S.bulk_action(rdb, who(rdb, "roadie"), ids, status="acknowledged", template_id=received)
    assert outcome.done == ours[:2]
    assert {k: v["code"] for k, v in outcome.refused.items()} == {ours[2]: "illegal_transition", theirs: "other_unit"}
    assert {rid: stored(rdb, rid) for rid in (ours[2], theirs)} == before  # the refused ones: untouched
    with rdb.session() as s:
        for rid in ours[:2]:
            assert s.get(Report, rid).status == "acknowledged"
            changes = s.scalars(
                select(AuditEntry).where(AuditEntry.object_id == str(rid), AuditEntry.action == "status")
            ).all()
            assert [(e.actor, e.detail["new"]) for e in changes] == [("roadie", "acknowledged")]  # one each


def test_a_bulk_action_refused_as_a_whole_touches_nothing(rdb):
    make_user(rdb, "boss", "admin")
    make_user(rdb, "roadie", "staff", department="11020-roads")
    ours = [file_report(rdb, title=f"Pothole {n}") for n in range(2)]
    before = {rid: stored(rdb, rid) for rid in ours}
    roadie = who(rdb, "roadie")
    for kwargs, code in (
        ({"status": "acknowledged", "template_id": template_id(rdb, "Work scheduled")}, "template_status"),
        ({"status": "acknowledged", "department": "11230-roads"}, "one_action"),
        ({}, "one_action"),
    ):
        with pytest.raises(InvalidInput) as refused:
            S.bulk_action(rdb, roadie, ours, **kwargs)
        assert refused.value.code == code
    with pytest.raises(InvalidInput) as refused:
        S.bulk_action(rdb, roadie, [], status="acknowledged")
    assert refused.value.code == "no_reports"
    assert {rid: stored(rdb, rid) for rid in ours} == before


def test_the_queue_bulk_form_and_map_pins(client, app):
    db = app.state.db
    make_user(db, "boss", "admin")
    make_user(db, "roadie", "staff", department="11020-roads")
    make_user(db, "pothole_crew", "staff", department="11020-roads")
    ours = [file_report(db, title=f"Pothole {n}") for n in range(2)]
    theirs = file_report(db, where=GANGNAM)
    assert client.get("/staff/reports.geojson").status_code == 401
    signin(client, "roadie")
    pins = client.get("/staff/reports.geojson?size=1000").json()
    assert sorted(f["id"] for f in pins["features"]) == ours  # the unit's queue only
    assert 'id="queue-map"' in client.get("/staff/reports?view=map", headers=HTML).text
    queue = client.get("/staff/reports?lang=en", headers=HTML).text
    user_id = re.search(r'<option value="(\d+)">pothole_crew</option>', queue).group(1)
    r = client.post(
        "/staff/reports/bulk",
        data={
            "csrf_token": csrf(client, "/staff/reports"),
            "action": "assign",
            "user_id": user_id,
            "ids": [str(ours[0]), str(ours[1]), str(theirs)],
            "back": "/staff/reports?order=created_desc",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/reports?order=created_desc"
    page = client.get(r.headers["location"] + "&lang=en", headers=HTML).text
    result = re.search(r'<div class="card bulk-result".*?</div>', page, re.S).group(0)
    assert f"#{ours[0]}, #{ours[1]}" in result and f'data-id="{theirs}"' in result
    with db.session() as s:
        assert [s.get(Report, rid).assignee_id for rid in (*ours, theirs)] == [int(user_id)] * 2 + [None]
    assert 'id="bulk-result"' not in client.get("/staff/reports", headers=HTML).text  # said once


def test_marking_fixed_with_an_after_photo_shows_it_as_after(client, app):
    db = app.state.db
    make_user(db, "roadie", "staff", department="11020-roads")
    rid = file_report(db)
    signin(client, "roadie")
    token = csrf(client, f"/staff/reports/{rid}")
    before = (stored(db, rid), sorted(p.name for p in uploads(app)))
    # With another status, or not an image: refused in words, nothing stored (no row, no file).
    for status, upload, code_text in (
        ("acknowledged", ("after.jpg", jpeg(), "image/jpeg"), "only with the status Fixed"),
        ("fixed", ("after.jpg", b"not a photo", "image/jpeg"), "Only JPEG, PNG or WebP"),
    ):
        r = client.post(
            f"/staff/reports/{rid}/status?lang=en",
            data={"csrf_token": token, "status": status},
            files={"after_photo": upload},
            headers=HTML,
        )
        assert r.status_code == 422 and code_text in r.text
        assert (stored(db, rid), sorted(p.name for p in uploads(app))) == before
    r = client.post(
        f"/staff/reports/{rid}/status",
        data={"csrf_token": token, "status": "fixed", "text": "Filled and levelled."},
        files={"after_photo": ("after.jpg", jpeg(exif=True), "image/jpeg")},
        follow_redirects=False,
    )
    assert r.status_code == 303
    detail = client.get(f"/reports/{rid}.json").json()
    assert detail["status"] == "fixed" and detail["photos"] == [] and len(detail["after_photos"]) == 1
    photo = client.get(detail["after_photos"][0]["url"])
    assert photo.status_code == 200 and b"SecretCam" not in photo.content  # the same pipeline: no metadata
    page = client.get(f"/reports/{rid}?lang=en", headers=HTML).text
    assert 'id="after-photos"' in page and detail["after_photos"][0]["thumb_url"] in page
    with db.session() as s:
        assert s.get(Report, rid).photo_count == 0  # the reporter's count is theirs
