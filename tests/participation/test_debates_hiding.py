"""Moderators hide a whole standalone debate (or show it again) from its page and the API, on both stores:
audited, its author told in their language, gone for everyone else meanwhile; a citizen cannot, and a hide
without a reason changes nothing."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from smartcity.app import create_app
from smartcity.core.models import AuditEntry
from smartcity.core.notify import Notification
from smartcity.participation.models import Debate
from tests.conftest import make_key, make_settings, make_user, signin

API = "/api/participation"
QUESTION = {
    "title": "주말 차 없는 거리를 늘릴까요?",
    "description": "세종대로 차 없는 거리를 매주 열지 의견을 모읍니다.",
}
PEOPLE = ("author", "kim", "mod")


@pytest.fixture
def world(db, db_url, tmp_path):
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False), db)
    for name in PEOPLE:
        make_user(db, name, "admin" if name == "mod" else "citizen", email=f"{name}@example.org", language="ko")
    keys = {name: {"X-API-Key": make_key(db, name)} for name in PEOPLE}
    with TestClient(app) as client:
        did = client.post(f"{API}/debates", json=QUESTION, headers=keys["author"]).json()["id"]
        argued = {"body": "매주 열면 상인들이 힘듭니다.", "stance": "against"}
        assert client.post(f"{API}/debates/{did}/arguments", json=argued, headers=keys["kim"]).status_code == 201
        yield client, keys, did


def _hide(client, keys, who, did, reason, hidden=True):
    return client.post(f"{API}/debates/{did}/hide", json={"reason": reason, "hidden": hidden}, headers=keys[who])


def _told(db, did) -> list[Notification]:
    with db.session() as s:
        return list(
            s.scalars(select(Notification).where(Notification.ref == f"debate:{did}").order_by(Notification.id))
        )


def test_a_moderator_hides_a_debate_through_the_api_and_shows_it_again(world, db):
    client, keys, did = world
    refused = _hide(client, keys, "kim", did, "마음에 들지 않습니다")
    assert refused.status_code == 403, refused.text
    short = _hide(client, keys, "mod", did, "x")
    assert short.status_code == 422 and short.json()["error"]["details"]["field"] == "reason", short.text
    with db.session() as s:
        assert s.scalar(select(Debate.hidden).where(Debate.id == did)) is False  # the refusals changed nothing
    assert _told(db, did) == []

    hidden = _hide(client, keys, "mod", did, "광고성 토론입니다")
    assert hidden.status_code == 200 and hidden.json() == {
        "id": did,
        "hidden": True,
        "hidden_reason": "광고성 토론입니다",
    }
    for who in ("kim", "author"):
        assert client.get(f"{API}/debates/{did}", headers=keys[who]).status_code == 404
        assert client.get(f"{API}/debates/{did}/arguments", headers=keys[who]).status_code == 404
    assert did not in [d["id"] for d in client.get(f"{API}/debates").json()["debates"]]
    assert client.get(f"{API}/debates/{did}", headers=keys["mod"]).status_code == 200  # moderators still read it

    told = _told(db, did)
    assert [(n.channel, n.to) for n in told] == [("email", "author@example.org")]
    assert "광고성 토론입니다" in told[0].body and "숨겼습니다" in told[0].subject + told[0].body  # Korean

    shown = _hide(client, keys, "mod", did, "검토 결과 문제가 없습니다", hidden=False)
    assert shown.json() == {"id": did, "hidden": False, "hidden_reason": None}
    assert client.get(f"{API}/debates/{did}", headers=keys["kim"]).status_code == 200
    assert len(_told(db, did)) == 2 and "다시" in _told(db, did)[1].subject
    with db.session() as s:
        audited = s.execute(
            select(AuditEntry.action, AuditEntry.detail)
            .where(AuditEntry.object_type == "participation.debate", AuditEntry.action.in_(("hide", "unhide")))
            .order_by(AuditEntry.id)
        ).all()
    assert [(a, d["reason"]) for a, d in audited] == [
        ("hide", "광고성 토론입니다"),
        ("unhide", "검토 결과 문제가 없습니다"),
    ]


def test_a_moderator_hides_a_debate_from_its_page_without_javascript(world, db):
    client, keys, did = world
    signin(client, "kim")
    assert f"/participation/debates/{did}/hide" not in client.get(f"/participation/debates/{did}").text
    client.cookies.clear()
    signin(client, "mod")
    page = client.get(f"/participation/debates/{did}").text
    assert f'action="/participation/debates/{did}/hide"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    sent = client.post(
        f"/participation/debates/{did}/hide",
        data={"csrf_token": token, "reason": "개인정보가 담겨 있습니다"},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    after = client.get(sent.headers["location"]).text
    assert "개인정보가 담겨 있습니다" in after and f'action="/participation/debates/{did}/unhide"' in after
    with db.session() as s:
        assert s.scalar(select(Debate.hidden_reason).where(Debate.id == did)) == "개인정보가 담겨 있습니다"
    assert client.get(f"{API}/debates/{did}", headers=keys["kim"]).status_code == 404
    assert len(_told(db, did)) == 1
