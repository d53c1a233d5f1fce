"""The hearing pages in Korean: the forms (CSRF and all) with and without JavaScript, a script in a question
shown as text, refusals said in Korean; and in chromium on a phone, a hearing run end to end — questions
asked and upvoted, one marked and answered by the official, each change appearing on the citizen's page by
itself over the event stream — then the minutes, after which the page is read-only. The official runs it from
a phone of their own: marks the question, answers it, ends the session and publishes the minutes in the page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from smartcity.app import create_app
from smartcity.participation.hearings_models import Hearing
from tests.conftest import eventually, make_key, make_settings, make_user, signin
from tests.helpers import BROWSER_TIMEOUT, browser_signin
from tests.participation.helpers import Phones, fits_the_phone

API = "/api/participation/hearings"
FIELDS = ("comments_open_at", "starts_at", "ends_at", "comments_close_at")


def _times(*hours: float) -> dict[str, str]:
    now = datetime.now(UTC)
    return {k: (now + timedelta(hours=h)).isoformat() for k, h in zip(FIELDS, hours, strict=True)}


def _token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_a_citizen_asks_and_comments_through_the_korean_pages(db, db_url, tmp_path):
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False), db)
    make_user(db, "official", "staff", department="city-transport", language="ko")
    make_user(db, "citizen1", "citizen", language="ko")
    official = {"X-API-Key": make_key(db, "official")}
    with TestClient(app) as client:
        body = {"topic_ko": "마을버스 노선 공청회", **_times(-1, -0.5, 1, 2)}
        hid = client.post(API, json=body, headers=official).json()["id"]
        client.cookies.set("lang", "ko")
        anonymous = client.get(f"/participation/hearings/{hid}")
        assert anonymous.status_code == 200 and "공청회 진행 중" in anonymous.text
        assert "로그인하면 질문하고 다른 질문에 공감할 수 있습니다." in anonymous.text
        signin(client, "citizen1")
        page = client.get(f"/participation/hearings/{hid}").text
        asked = client.post(
            f"/participation/hearings/{hid}/ask",
            data={"body": "<script>alert(1)</script> 막차 시간은요?", "csrf_token": _token(page)},
            follow_redirects=False,
        )
        assert asked.status_code == 303
        part = client.get(f"/participation/hearings/{hid}?part=questions").text
        assert "<html" not in part and 'class="questions"' in part  # the part alone
        assert "&lt;script&gt;alert(1)&lt;/script&gt; 막차 시간은요?" in part and "<script>alert" not in part
        assert "공감 0개" in part
        # The page's script sends forms in the background: 204, or the refusal as Korean text.
        live = {"X-Live": "1"}
        refused = client.post(
            f"/participation/hearings/{hid}/comment",
            data={"body": "지금 의견", "csrf_token": _token(page)},
            headers=live,
        )
        assert (refused.status_code, refused.text) == (409, "의견은 공청회 전과 공청회 후 의견 받기 기간에만 받습니다.")
        qid = re.search(r'class="question[^"]*" data-id="(\d+)"', part).group(1)
        voted = client.post(
            f"/participation/hearings/{hid}/vote", data={"item": qid, "csrf_token": _token(page)}, headers=live
        )
        assert voted.status_code == 204
        assert "공감 1개" in client.get(f"/participation/hearings/{hid}?part=questions").text
        assert "마을버스 노선 공청회" in client.get("/participation/hearings").text
        # Any kind's page may carry a follow button: the form comes back to the object's page.
        button = {"on": "1", "csrf_token": _token(page)}
        followed = client.post(f"/participation/follows/hearing/{hid}", data=button, follow_redirects=False)
        assert (followed.status_code, followed.headers["location"]) == (303, f"/participation/hearings/{hid}")
        assert "소식 그만 받기" in client.get(f"/participation/hearings/{hid}").text
        unknown = client.post(f"/participation/follows/ballot/{hid}", data=button, headers={"Accept": "text/html"})
        assert unknown.status_code == 422 and "ballot 종류는 소식을 받을 수 없습니다" in unknown.text
        # A citizen announces no hearing.
        assert client.get("/participation/hearings/new").status_code == 403
        # An id past PostgreSQL's integer is no hearing, not a server error (pages take any int from the path).
        huge = "/participation/hearings/99999999999"
        assert client.get(huge).status_code == 404
        assert client.post(f"{huge}/follow", data={"csrf_token": _token(page)}).status_code == 404
        big_item = {"item": "99999999999", "csrf_token": _token(page)}
        assert client.post(f"/participation/hearings/{hid}/vote", data=big_item, headers=live).status_code == 404


@pytest.fixture
def phones(browser, live_app):
    with Phones(browser, live_app) as them:
        yield them


@pytest.mark.browser
def test_a_hearing_runs_live_on_a_phone_in_korean(live_app, page, phones):
    db = live_app.db
    make_user(db, "official", "staff", department="city-transport", language="ko")
    make_user(db, "citizen1", "citizen", language="ko")
    make_user(db, "citizen2", "citizen", language="ko")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("official", "citizen2")}
    api = httpx.Client(base_url=live_app.url, timeout=10)
    body = {
        "topic_ko": "한강공원 야간 조명 공청회",
        "summary_ko": "산책로 조명 계획을 설명합니다.",
        **_times(-1, -0.2, 2, 3),
    }
    hid = api.post(API, json=body, headers=key["official"]).json()["id"]
    doc = ("조명계획.txt", "조명 12곳을 늘립니다.".encode(), "text/plain")
    assert api.post(f"{API}/{hid}/documents", files={"file": doc}, headers=key["official"]).status_code == 201

    browser_signin(page, live_app, "citizen1", f"/participation/hearings/{hid}")
    page.wait_for_selector("#live-state[data-state=live]", timeout=BROWSER_TIMEOUT)
    assert page.locator("h1").inner_text() == "한강공원 야간 조명 공청회"
    assert page.locator(".documents a").inner_text() == "조명계획.txt"
    # The citizen asks from the phone; another citizen's question arrives by itself.
    page.fill("form.ask textarea", "자전거 도로 조명은 눈부시지 않나요?")
    page.click("form.ask button")
    page.wait_for_selector("#questions .question", timeout=BROWSER_TIMEOUT)
    theirs = api.post(f"{API}/{hid}/questions", json={"body": "철새 서식지에 영향은 없나요?"}, headers=key["citizen2"])
    other = theirs.json()["id"]
    row = page.locator(f"#questions .question[data-id='{other}']")
    row.wait_for(timeout=BROWSER_TIMEOUT)
    # An upvote moves it first.
    row.locator("form.vote button").click()
    eventually(lambda: page.locator("#questions .question").first.get_attribute("data-id") == str(other), timeout=10)
    assert page.locator(f"#questions .question[data-id='{other}']").get_attribute("data-votes") == "1"
    assert "공감 1개" in page.locator(f"#questions .question[data-id='{other}'] .votes").inner_text()
    # The official, on a phone of their own, marks it and answers it: both appear without the citizen touching
    # anything.
    official = phones.signed_in("official", f"/participation/hearings/{hid}")
    theirs_there = official.locator(f"#questions .question[data-id='{other}']")
    theirs_there.locator("form.answering button").click()
    page.wait_for_selector(f"#questions .question.answering[data-id='{other}'] .badge.now", timeout=BROWSER_TIMEOUT)
    assert page.locator(".badge.now").inner_text() == "지금 답변 중"
    official.wait_for_selector(f"#questions .question.answering[data-id='{other}'] .badge.now")
    answer = "야간 조명은 아래로만 비추어 서식지에 영향이 없도록 합니다."
    theirs_there.get_by_label("답변", exact=True).fill(answer)
    theirs_there.get_by_role("button", name="답변 게시").click()
    page.wait_for_selector(f"#questions .question.answered[data-id='{other}'] .answer", timeout=BROWSER_TIMEOUT)
    assert answer in page.locator(f"#questions .question[data-id='{other}'] .answer").inner_text()
    assert fits_the_phone(official)

    # The official ends the session: the page becomes the comment period's, and a comment is taken.
    official.get_by_role("button", name="지금 공청회 끝내기").click()
    official.wait_for_selector("#hearing[data-phase=after]")
    page.wait_for_selector("#hearing[data-phase=after]", timeout=BROWSER_TIMEOUT)
    assert page.locator("form.ask").count() == 0
    page.fill("form.comment textarea", "설명 감사합니다. 공사 일정도 알려 주세요.")
    page.click("form.comment button")
    page.wait_for_selector("#comment-list .comment[data-period=after]", timeout=BROWSER_TIMEOUT)

    # The comment period closes; the minutes come out and the page, by itself, turns read-only.
    with db.session() as s:
        s.execute(update(Hearing).where(Hearing.id == hid).values(comments_close_at=datetime.now(UTC)))
    official.reload()
    official.get_by_label("회의록(마크다운)").fill(
        "## 회의 결과\n\n- 조명 12곳 설치 **확정**\n- 철새 서식지 구간은 낮은 조도"
    )
    official.get_by_role("button", name="회의록 공개하기").click()
    official.wait_for_selector("#hearing[data-phase=finished] .minutes-text h2")
    page.wait_for_selector("#hearing[data-phase=finished] .minutes-text h2", timeout=BROWSER_TIMEOUT)
    assert page.locator(".minutes-text h2").inner_text() == "회의 결과"
    assert page.locator(".minutes-text strong").inner_text() == "확정"
    assert page.locator("#hearing form.ask, #hearing form.comment, #hearing form.vote").count() == 0
    assert page.locator(".phase").first.inner_text() == "회의록 공개됨"
    api.close()


def test_an_official_announces_a_hearing_through_the_korean_form(db, db_url, tmp_path):
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False), db)
    make_user(db, "official", "staff", department="city-transport", language="ko")
    with TestClient(app) as client:
        client.cookies.set("lang", "ko")
        signin(client, "official")
        form = client.get("/participation/hearings/new")
        assert form.status_code == 200 and "공청회 열기" in form.text
        fields = {
            "topic_ko": "자전거도로 확충 공청회",
            "comments_open_at": "2030-03-01T09:00",
            "starts_at": "2030-03-10T19:00",
            "ends_at": "2030-03-10T21:00",
            "comments_close_at": "2030-03-17T18:00",
            "csrf_token": _token(form.text),
        }
        backwards = {**fields, "ends_at": "2030-03-10T18:00"}
        refused = client.post("/participation/hearings/new", data=backwards)
        assert refused.status_code == 422
        assert "일정은 의견 받기 시작, 공청회 시작, 공청회 종료, 의견 받기 마감 순서여야 합니다." in refused.text
        assert 'value="자전거도로 확충 공청회"' in refused.text  # what was typed is kept
        made = client.post("/participation/hearings/new", data=fields, follow_redirects=False)
        assert made.status_code == 303
        hid = int(made.headers["location"].rsplit("/", 1)[1])
        shown = client.get(f"/api/participation/hearings/{hid}").json()
        # The form's times are the city's (Seoul, UTC+9): 19:00 there is 10:00 UTC.
        assert shown["starts_at"].startswith("2030-03-10T10:00:00") and shown["phase"] == "upcoming"
        page = client.get(made.headers["location"]).text
        assert "2030-03-10 19:00 – 2030-03-10 21:00" in page and "아직 열리지 않았습니다" in page
