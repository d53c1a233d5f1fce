"""Standalone debates (issue 15) on both stores, through the JSON API as a phone app calls it: a debate opened
on a question (no proposal), listed and searched by words, district and tag; arguments for and against,
threaded, voted up and down; a participant counted once; closed after its closing date; bad input refused in
the platform's error shape with nothing stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from smartcity.app import create_app
from smartcity.core.db import utcnow
from smartcity.core.models import AuditEntry
from smartcity.participation.models import Comment, Debate
from tests.conftest import make_key, make_settings, make_user

API = "/api/participation"
QUESTION = {
    "title": "한강공원에 반려견 놀이터를 더 만들어야 할까요?",
    "description": "망원한강공원 반려견 놀이터가 주말마다 붐빕니다. 놀이터를 늘릴지, 시간제로 나눌지 의견을 모읍니다.",
    "district_code": "11140",
    "tags": ["반려동물", "#한강공원"],
}


@pytest.fixture
def world(db, db_url, tmp_path):
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False, participation_reply_depth=1), db)
    make_user(db, "staff1", "staff", department="city-transport")
    for name, role in (("kim", "citizen"), ("lee", "citizen"), ("mod", "admin")):
        make_user(db, name, role)
    keys = {name: {"X-API-Key": make_key(db, name)} for name in ("staff1", "kim", "lee", "mod")}
    with TestClient(app) as client:
        yield client, keys


def _argue(client, keys, who, did, body, stance=None, parent=None):
    sent = {"body": body, "stance": stance, "parent_id": parent}
    return client.post(f"{API}/debates/{did}/arguments", json=sent, headers=keys[who])


def test_a_debate_is_opened_searched_and_argued_for_and_against(world, db):
    client, keys = world
    made = client.post(f"{API}/debates", json=QUESTION, headers=keys["staff1"])
    assert made.status_code == 201, made.text
    debate = made.json()
    did = debate["id"]
    assert (debate["tags"], debate["open"], debate["following"]) == (["반려동물", "한강공원"], True, True)
    other = {"title": "자전거 도로 확장에 찬성하십니까?", "description": "도심 자전거 도로를 두 배로 늘리는 안입니다."}
    assert client.post(f"{API}/debates", json=other, headers=keys["kim"]).status_code == 201  # a citizen may too

    def found(**query) -> list[str]:
        return [d["title"] for d in client.get(f"{API}/debates", params=query).json()["debates"]]

    assert found(q="반려견 놀이터") == [QUESTION["title"]]
    assert found(tag="#한강공원") == [QUESTION["title"]]
    assert found(district="11140") == [other["title"], QUESTION["title"]]  # the whole city's belongs too
    assert found(district="11010") == [other["title"]]
    assert found(q="없는단어") == []

    first = _argue(client, keys, "kim", did, "주말 이용객이 많아 놀이터가 더 필요합니다.", "for")
    assert first.status_code == 201, first.text
    against = _argue(client, keys, "lee", did, "시간제로 나누면 충분합니다.", "against").json()["comment_id"]
    reply = _argue(client, keys, "kim", did, "시간제는 평일에만 효과가 있습니다.", parent=against)
    assert reply.status_code == 201
    too_deep = _argue(client, keys, "lee", did, "한 단계 더", parent=reply.json()["comment_id"])
    assert (too_deep.status_code, too_deep.json()["error"]["code"]) == (422, "too_deep")
    no_side = _argue(client, keys, "lee", did, "편을 고르지 않았습니다.")
    assert (no_side.status_code, no_side.json()["error"]["code"]) == (422, "stance")

    up = client.put(f"{API}/comments/{against}/vote", json={"value": 1}, headers=keys["kim"]).json()
    assert (up["up"], up["down"]) == (1, 0)
    listed = client.get(f"{API}/debates/{did}/arguments", params={"sort": "supported"}, headers=keys["kim"]).json()
    assert listed["participants"] == 2  # kim argued twice: counted once
    tops = [(a["stance"], a["up"], a["my_vote"]) for a in listed["arguments"]]
    assert tops == [("against", 1, 1), ("for", 0, 0)]
    [reply_out] = listed["arguments"][0]["replies"]
    assert (reply_out["stance"], reply_out["depth"]) == ("against", 1)  # a reply takes its parent's side
    shown = client.get(f"{API}/debates/{did}").json()
    assert (shown["arguments"], shown["participants"]) == (3, 2)
    with db.session() as s:
        assert s.scalar(select(AuditEntry.actor).where(AuditEntry.object_type == "participation.debate")) == "staff1"


def test_a_closed_debate_takes_no_arguments_and_bad_debates_store_nothing(world, db):
    client, keys = world
    did = client.post(f"{API}/debates", json=QUESTION, headers=keys["staff1"]).json()["id"]
    assert _argue(client, keys, "kim", did, "찬성합니다. 꼭 필요합니다.", "for").status_code == 201
    with db.session() as s:
        s.execute(update(Debate).where(Debate.id == did).values(closes_at=utcnow() - timedelta(minutes=1)))
    late = _argue(client, keys, "lee", did, "반대합니다. 이미 충분합니다.", "against")
    assert (late.status_code, late.json()["error"]["code"]) == (409, "not_open")
    assert client.get(f"{API}/debates/{did}").json()["open"] is False
    assert [d["id"] for d in client.get(f"{API}/debates", params={"open_only": True}).json()["debates"]] == []

    past = (utcnow() - timedelta(days=1)).isoformat()
    bad = [
        ({**QUESTION, "closes_at": past}, 422),
        ({**QUESTION, "district_code": "99999"}, 422),
        ({**QUESTION, "title": "짧"}, 422),
        ({**QUESTION, "tags": [f"태그{i}" for i in range(9)]}, 422),
    ]
    for body, status in bad:
        answer = client.post(f"{API}/debates", json=body, headers=keys["kim"])
        assert answer.status_code == status and "error" in answer.json(), answer.text
    anonymous = client.post(f"{API}/debates", json=QUESTION)
    assert anonymous.status_code in (401, 403)
    assert _argue(client, keys, "kim", 2**31, "없는 토론입니다.", "for").status_code == 404
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Debate)) == 1
        assert s.scalar(select(func.count()).select_from(Comment)) == 1


def test_a_hidden_argument_and_a_hidden_debate_are_gone_for_the_public(world, db):
    client, keys = world
    did = client.post(f"{API}/debates", json=QUESTION, headers=keys["staff1"]).json()["id"]
    cid = _argue(client, keys, "kim", did, "광고: 애견 용품 할인!", "for").json()["comment_id"]
    hidden = client.post(f"{API}/comments/{cid}/hide", json={"reason": "광고성 글"}, headers=keys["mod"])
    assert hidden.status_code == 200, hidden.text
    assert (hidden.json()["debate_id"], hidden.json()["proposal_id"]) == (did, None)
    [public] = client.get(f"{API}/debates/{did}/arguments").json()["arguments"]
    assert (public["body"], public["hidden"]) == (None, True)
    refused = client.put(f"{API}/comments/{cid}/vote", json={"value": 1}, headers=keys["lee"])
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "hidden")
    with db.session() as s:
        s.execute(update(Debate).where(Debate.id == did).values(hidden=True, hidden_reason="중복"))
    assert client.get(f"{API}/debates/{did}").status_code == 404
    assert client.get(f"{API}/debates").json()["debates"] == []
    assert client.get(f"{API}/debates/{did}", headers=keys["mod"]).status_code == 200
