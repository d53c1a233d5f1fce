"""A signed-in citizen's own reports (issue 12 item 14), on both stores: "나의 신고" lists theirs and only
theirs with status and latest update; the report form is filled from their account (an audited read);
"me too" on their own report is refused by the service and not offered by the page."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from smartcity.core.errors import PermissionDenied
from smartcity.core.models import AuditEntry
from smartcity.reports import service as S
from smartcity.reports.models import Report, ReportSupport
from tests.conftest import make_user, signin
from tests.reports.helpers import GANGNAM, file_report, who

HTML = {"accept": "text/html"}


def csrf(client) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/reports/new").text).group(1)


def test_the_reporter_cannot_support_their_own_report(rdb):
    make_user(rdb, "minji", "citizen")
    make_user(rdb, "jisoo", "citizen")
    rid = file_report(rdb, who(rdb, "minji"))
    with rdb.session() as s, pytest.raises(PermissionDenied) as refused:
        S.support(s, who(rdb, "minji"), rid)
    assert refused.value.code == "own_report"
    with rdb.session() as s:
        assert s.get(Report, rid).support_count == 0
        assert s.scalar(select(func.count()).select_from(ReportSupport)) == 0
    with rdb.session() as s:
        assert S.support(s, who(rdb, "jisoo"), rid) == 1  # anyone else still may


def test_the_report_page_offers_me_too_to_others_only_and_refuses_the_reporter(client, app):
    db = app.state.db
    make_user(db, "minji", "citizen")
    make_user(db, "jisoo", "citizen")
    rid = file_report(db, who(db, "minji"))
    signin(client, "minji")
    own = client.get(f"/reports/{rid}?lang=en", headers=HTML).text
    assert 'id="support"' not in own and "This is your own report." in own
    token = csrf(client)
    r = client.post(f"/reports/{rid}/support", headers={"x-csrf-token": token, "accept": "application/json"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "own_report"
    client.post("/signout", data={"csrf_token": token})
    signin(client, "jisoo")
    other = client.get(f"/reports/{rid}?lang=en", headers=HTML).text
    assert 'id="support"' in other and "This is your own report." not in other
    token = csrf(client)
    r = client.post(f"/reports/{rid}/support", headers={"x-csrf-token": token, "accept": "application/json"})
    assert r.json()["support_count"] == 1


def test_my_reports_lists_only_mine_with_status_and_last_update(client, app):
    db = app.state.db
    make_user(db, "minji", "citizen")
    make_user(db, "jisoo", "citizen")
    make_user(db, "roadie", "staff", department="11020-roads")
    first = file_report(db, who(db, "minji"), title="Pothole by the gate")
    second = file_report(db, who(db, "minji"), title="Broken kerb")
    theirs = file_report(db, who(db, "jisoo"), title="Someone else's")
    file_report(db, title="Anonymous one")
    gangnam = file_report(db, who(db, "minji"), where=GANGNAM, title="In Gangnam")
    with db.session() as s:
        S.transition(s, who(db, "roadie"), first, "acknowledged", text="We will look at it this week.")
    signin(client, "minji")
    mine = client.get("/reports/mine.json").json()
    # Most recently changed first: the acknowledged one went to the top.
    assert [i["id"] for i in mine["items"]] == [first, gangnam, second]
    top = mine["items"][0]
    assert top["status"] == "acknowledged"
    assert top["last_update"]["kind"] == "status" and top["last_update"]["text"] == "We will look at it this week."
    assert mine["items"][2]["last_update"]["kind"] == "created"
    page = client.get("/reports/mine?lang=ko", headers=HTML)
    assert page.status_code == 200
    assert "<h1>나의 신고</h1>" in page.text and 'href="/reports/mine"' in page.text  # the page and its nav link
    assert "Pothole by the gate" in page.text and "We will look at it this week." in page.text
    assert "Someone else" not in page.text and "Anonymous one" not in page.text
    assert f'data-id="{theirs}"' not in page.text


def test_my_reports_needs_sign_in(client, app):
    r = client.get("/reports/mine", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=/reports/mine"
    assert client.get("/reports/mine.json").status_code == 401
    assert 'href="/reports/mine"' not in client.get("/reports?lang=en", headers=HTML).text


def test_the_form_is_filled_from_the_account_and_the_read_is_audited(client, app):
    db = app.state.db
    uid = make_user(db, "minji", "citizen", display_name="김민지", email="minji@example.kr", phone="010-1234-5678")
    anonymous = client.get("/reports/new?lang=en").text
    assert 'value="minji@example.kr"' not in anonymous
    signin(client, "minji")
    form = client.get("/reports/new?lang=en").text
    assert re.search(r'name="name"[^>]*value="김민지"', form)
    assert re.search(r'name="email"[^>]*value="minji@example.kr"', form)
    assert re.search(r'name="phone"[^>]*value="010-1234-5678"', form)
    with db.session() as s:
        reads = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "read_contact", AuditEntry.object_type == "user")
        ).all()
        assert [(e.actor_id, e.object_id) for e in reads] == [(uid, str(uid))]
