"""The vote pages in Korean: staff set a vote up through the form; in a phone-sized chromium a citizen verifies
by SMS code, casts, keeps the receipt; a second account of the same person and a resident of another district
are refused; at the close the results appear with their breakdown and the receipt checks out."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from smartcity.app import create_app
from smartcity.core.auth import Identity
from smartcity.core.db import utcnow
from smartcity.core.notify import Notification
from smartcity.participation import votes_service
from smartcity.participation.voting_models import Vote
from tests.conftest import make_settings, make_user, signin
from tests.helpers import BROWSER_TIMEOUT, browser_signin

JONGNO, JUNG = "11010", "11020"


def _token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _code(db, phone: str) -> str:
    with db.session() as s:
        body = s.scalar(select(Notification.body).where(Notification.to == phone).order_by(Notification.id.desc()))
    return re.search(r"(?<!\d)(\d{6})(?!\d)", body).group(1)


def test_staff_set_up_a_vote_through_the_korean_form(db, db_url, tmp_path):
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False), db)
    make_user(db, "staff1", "staff", department="city-transport", language="ko")
    make_user(db, "kim", "citizen", language="ko")
    with TestClient(app) as client:
        client.cookies.set("lang", "ko")
        signin(client, "kim")
        assert client.get("/participation/votes/new").status_code == 403
        signin(client, "staff1")
        form = client.get("/participation/votes/new")
        assert form.status_code == 200 and "투표 만들기" in form.text and "종로구" in form.text
        now = utcnow().astimezone(app.state.profile.tz)
        fields = {
            "csrf_token": _token(form.text),
            "title": "<b>청계천</b> 야간 조명 운영",
            "opens_at": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"),
            "closes_at": (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M"),
            "q0_text": "야간 조명을 밤 11시까지 켤까요?",
            "q0_kind": "single",
            "q0_options": "찬성\n반대",
            "districts": [JONGNO, JUNG],
            "age_bands": ["1", "2"],
            "results_hidden": "on",
        }
        refused = client.post("/participation/votes/new", data=fields)
        assert refused.status_code == 422 and "투표는 시작한 뒤에 마감되어야 합니다." in refused.text
        assert "&lt;b&gt;청계천&lt;/b&gt;" in refused.text  # what was typed stays, escaped
        fields["closes_at"] = (now + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
        made = client.post("/participation/votes/new", data=fields, follow_redirects=False)
        assert made.status_code == 303, made.text
        page = client.get(made.headers["location"])
        assert "투표 중" in page.text and "20~29세" in page.text and "중구" in page.text
    with db.session() as s:
        vote = s.scalars(select(Vote)).one()
        assert vote.target["districts"] == [JONGNO, JUNG] and vote.target["age_bands"] == [1, 2]
        assert vote.questions[0]["options"] == ["찬성", "반대"]


def test_a_targeted_vote_in_a_korean_phone_browser(live_app, page):
    db = live_app.db
    make_user(db, "staff1", "staff", department="city-transport")
    for name in ("kim", "kim2", "lee"):
        make_user(db, name, "citizen", language="ko")
    now = utcnow()
    question = {"text": "주말 차 없는 거리에 찬성하십니까?", "kind": "single", "options": ["찬성", "반대"]}
    with db.session() as s:
        staff = Identity(user_id=_uid(s, "staff1"), username="staff1", role="staff", via="key")
        new = votes_service.NewVote(
            "종로 차 없는 거리 주말 운영",
            [question],
            now - timedelta(minutes=1),
            now + timedelta(days=1),
            target={"districts": [JONGNO]},
            min_count=1,
        )
        vid = votes_service.create(s, staff, new).id
    page.set_default_timeout(BROWSER_TIMEOUT)
    url = f"/participation/votes/{vid}?lang=ko"

    def verify(username: str, phone: str, district: str) -> None:
        browser_signin(page, live_app, username, url)
        page.fill("input[name=phone]", phone)
        page.fill("input[name=birth_year]", str(now.year - 34))
        page.select_option("select[name=district_code]", district)
        with page.expect_navigation():
            page.click("button:has-text('인증번호 받기')")
        page.fill("input[name=code]", _code(db, phone.replace("-", "")))
        with page.expect_navigation():
            page.click("form[action$='/confirm'] button:has-text('확인')")

    verify("kim", "010-1234-0001", JONGNO)
    page.check("label:has-text('찬성') input")
    with page.expect_navigation():
        page.click("button:has-text('투표하기')")
    page.wait_for_selector(".receipt-code")
    receipt = page.inner_text(".receipt-code")
    assert "투표했습니다" in page.inner_text(".receipt")
    assert page.get_attribute(".receipt-check", "data-counted") == "yes"

    page.context.clear_cookies()
    verify("kim2", "010-1234-0001", JONGNO)  # the same phone: the same person
    page.check("label:has-text('찬성') input")
    with page.expect_navigation():
        page.click("button:has-text('투표하기')")
    assert "이미 다른 계정으로 투표했습니다" in page.inner_text("[role=alert]")

    page.context.clear_cookies()
    verify("lee", "010-5678-0002", JUNG)
    assert "다른 자치구 주민을 위한 투표입니다" in page.inner_text(".refusal")

    page.goto(f"{live_app.url}/participation/votes/{vid}/results?lang=ko")
    assert "투표가 마감되면 결과를 공개합니다" in page.inner_text("main")
    with db.session() as s:
        s.execute(update(Vote).where(Vote.id == vid).values(closes_at=utcnow() - timedelta(seconds=1)))
    page.goto(f"{live_app.url}/participation/votes/{vid}/results?lang=ko")
    assert page.inner_text(".total").startswith("1표")
    page.click("text=자치구별")
    assert "종로구" in page.inner_text(".by-district")
    page.goto(f"{live_app.url}/participation/votes/{vid}/check?lang=ko&code={receipt.lower()}")
    assert page.get_attribute(".chain", "data-ok") == "yes"
    assert "체인의 1번째 투표지" in page.inner_text(".receipt-check")


def _uid(session, username: str) -> int:
    from smartcity.core.models import User

    return session.scalar(select(User.id).where(User.username == username))
