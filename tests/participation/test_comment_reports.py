"""Reports of single debate comments (issue 15) on both stores: any signed-in citizen reports a comment or an
argument with a reason, once; moderators read a queue of reported comments with counts and reasons (never who
reported), hide one (its author is told) or dismiss the reports; rate-limited and audited."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from smartcity.app import create_app
from smartcity.core.models import AuditEntry
from smartcity.core.notify import Notification
from smartcity.participation.models import CommentReport
from tests.conftest import make_key, make_settings, make_user, signin

API = "/api/participation"
IDEA = {
    "title": "망원시장 앞 자전거 도로를 이어 주세요",
    "body": "망원시장 앞에서 자전거 도로가 끊겨 차도로 내려가야 합니다. 합정역까지 이어 주시기를 제안합니다.",
    "category": "transport",
}
QUESTION = {
    "title": "주말 차 없는 거리를 늘릴까요?",
    "description": "세종대로 차 없는 거리를 매주 열지 의견을 모읍니다.",
}
PEOPLE = ("author", "kim", "lee", "park", "mod")


@pytest.fixture
def world(db, db_url, tmp_path):
    rules = dict(participation_debate_likes=1, participation_comment_reports_per_hour=2)
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False, **rules), db)
    for name in PEOPLE:
        make_user(db, name, "admin" if name == "mod" else "citizen", email=f"{name}@example.org", language="ko")
    keys = {name: {"X-API-Key": make_key(db, name)} for name in PEOPLE}
    with TestClient(app) as client:
        yield client, keys


def _report(client, keys, who, cid, reason, text=""):
    return client.post(f"{API}/comments/{cid}/reports", json={"reason": reason, "text": text}, headers=keys[who])


def _argument(client, keys, who: str, text: str) -> int:
    did = client.post(f"{API}/debates", json=QUESTION, headers=keys["author"]).json()["id"]
    sent = {"body": text, "stance": "against"}
    return client.post(f"{API}/debates/{did}/arguments", json=sent, headers=keys[who]).json()["comment_id"]


def _proposal_comment(client, keys, who: str, text: str) -> int:
    pid = client.post(f"{API}/proposals", json=IDEA, headers=keys["author"]).json()["id"]
    assert client.put(f"{API}/proposals/{pid}/like", headers=keys["lee"]).json()["status"] == "debate"
    return client.post(f"{API}/proposals/{pid}/comments", json={"body": text}, headers=keys[who]).json()["comment_id"]


def test_reports_are_counted_once_per_person_and_queued_with_their_reasons(world, db):
    client, keys = world
    spam = _argument(client, keys, "kim", "싸게 팝니다 010-1234-5678 연락 주세요")
    first = _report(client, keys, "lee", spam, "spam")
    assert (first.status_code, first.json()["new"]) == (201, True)
    assert _report(client, keys, "lee", spam, "abuse").json()["new"] is False  # one report per person
    assert _report(client, keys, "park", spam, "personal_data").status_code == 201
    assert _report(client, keys, "author", spam, "other", "전화번호가 적혀 있습니다").status_code == 201
    quiet = _proposal_comment(client, keys, "park", "좋은 제안입니다.")
    assert _report(client, keys, "kim", quiet, "off_topic").status_code == 201

    refused = client.get(f"{API}/comment-reports", headers=keys["lee"])
    assert refused.status_code == 403 and refused.json()["error"]["code"]
    queue = client.get(f"{API}/comment-reports", headers=keys["mod"]).json()["reported"]
    assert [(r["comment_id"], r["count"]) for r in queue] == [(spam, 3), (quiet, 1)]  # most reported first
    assert queue[0]["reasons"] == {"spam": 1, "personal_data": 1, "other": 1}
    assert queue[0]["texts"] == ["전화번호가 적혀 있습니다"]
    assert queue[1]["proposal_id"] is not None and queue[0]["debate_id"] is not None
    assert "lee" not in str(queue) and "park" not in str(queue)  # reporters stay unnamed

    with db.session() as s:
        audited = s.scalars(
            select(AuditEntry.actor).where(
                AuditEntry.action == "report_abuse", AuditEntry.object_type == "participation.comment"
            )
        ).all()
    assert sorted(audited) == ["author", "kim", "lee", "park"]  # the repeated report changed nothing


def test_bad_reports_are_refused_and_a_person_reports_only_so_often(world, db):
    client, keys = world
    cid = _argument(client, keys, "kim", "이 의견에 반대합니다.")
    for reason, text, code in (("other", "", "invalid"), ("rude", "", None)):
        answer = _report(client, keys, "lee", cid, reason, text)
        assert answer.status_code == 422 and "error" in answer.json(), answer.text
        assert code is None or answer.json()["error"]["code"] == code
    assert _report(client, keys, "lee", 2**31 - 1, "spam").status_code == 404
    assert client.post(f"{API}/comments/{cid}/reports", json={"reason": "spam"}).status_code in (401, 403)
    others = [_argument(client, keys, "kim", f"두 번째 의견 {n}번입니다.") for n in range(2)]
    assert _report(client, keys, "lee", cid, "spam").status_code == 201
    assert _report(client, keys, "lee", others[0], "spam").status_code == 201
    limited = _report(client, keys, "lee", others[1], "spam")
    assert (limited.status_code, limited.json()["error"]["code"]) == (429, "too_many_reports")
    with db.session() as s:
        assert len(s.scalars(select(CommentReport.id)).all()) == 2  # nothing half-stored


def test_hiding_a_reported_comment_tells_its_author_and_dismissing_settles_the_reports(world, db):
    client, keys = world
    bad = _proposal_comment(client, keys, "kim", "바보 같은 제안이네요")
    fine = _argument(client, keys, "park", "반대하지만 이유는 이렇습니다.")
    assert _report(client, keys, "lee", bad, "abuse").status_code == 201
    assert _report(client, keys, "lee", fine, "off_topic").status_code == 201

    hidden = client.post(f"{API}/comments/{bad}/hide", json={"reason": "욕설입니다"}, headers=keys["mod"])
    assert hidden.status_code == 200 and hidden.json()["hidden"] is True
    kept = client.post(f"{API}/comments/{fine}/reports/dismiss", headers=keys["mod"])
    assert kept.json() == {"comment_id": fine, "dismissed": 1}
    assert client.post(f"{API}/comments/{fine}/reports/dismiss", headers=keys["lee"]).status_code == 403
    assert client.get(f"{API}/comment-reports", headers=keys["mod"]).json()["reported"] == []
    with db.session() as s:
        told = s.scalars(select(Notification).where(Notification.ref == f"comment:{bad}")).all()
        settled = dict(s.execute(select(CommentReport.comment_id, CommentReport.settled)).all())
        dismissed = s.scalar(select(AuditEntry.detail).where(AuditEntry.action == "dismiss_reports"))
    assert [(n.channel, n.to) for n in told] == [("email", "kim@example.org")]
    assert "욕설입니다" in told[0].body and "숨겼습니다" in told[0].subject + told[0].body  # in the author's Korean
    assert settled == {bad: "hidden", fine: "dismissed"}
    assert dismissed["reports"] == 1


def test_a_citizen_reports_from_the_page_without_javascript(world, db):
    client, keys = world
    cid = _argument(client, keys, "kim", "싸게 팝니다 광고입니다")
    did = client.get(f"{API}/comment-reports", headers=keys["mod"]).json()  # nothing yet
    assert did == {"reported": []}
    signin(client, "lee")
    page = client.get("/participation/debates/1")
    assert f'action="/participation/comments/{cid}/report"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    sent = client.post(
        f"/participation/comments/{cid}/report",
        data={"csrf_token": token, "reason": "spam", "text": ""},
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"].startswith("/participation/debates/1?reported=")
    thanked = client.get(sent.headers["location"])
    assert "신고" in thanked.text and 'class="notice reported" role="status"' in thanked.text
    assert client.get(f"{API}/comment-reports", headers=keys["mod"]).json()["reported"][0]["comment_id"] == cid
