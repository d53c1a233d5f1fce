"""Proposals' followers on both stores live in follows' one table: following through the proposal's own API,
its page's button or the generic PUT /api/participation/follows/proposal/<id> is the same row, and every
follower hears the proposal's steps by the channels they chose (SMS only when asked). The migration that drops
the old table keeps followers written after the first copy."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from smartcity.app import create_app
from smartcity.core.models import User
from smartcity.core.notify import Notification
from smartcity.participation.follows import Follow
from tests.conftest import make_key, make_settings, make_user, signin
from tests.participation.helpers import NOW, insert_users_and_a_proposal

API = "/api/participation"
IDEA = {
    "title": "공원 산책로에 가로등을 달아 주세요",
    "body": "저녁이면 공원 산책로가 너무 어두워 걷기 무섭습니다. 가로등을 설치해 주시기를 제안합니다.",
    "category": "safety",
}


def _followers(db, pid: int) -> list[tuple[str, bool]]:
    with db.session() as s:
        rows = s.execute(
            select(User.username, Follow.sms)
            .join(Follow, Follow.user_id == User.id)
            .where(Follow.kind == "proposal", Follow.object_id == pid)
            .order_by(User.username)
        )
        return [tuple(r) for r in rows]


def _news(db, pid: int) -> list[tuple[str, str, str]]:
    with db.session() as s:
        rows = s.execute(
            select(Notification.channel, Notification.to, Notification.body)
            .where(Notification.ref == f"proposal:{pid}")
            .order_by(Notification.id)
        )
        return [tuple(r) for r in rows]


def test_every_way_of_following_is_one_row_and_followers_hear_by_their_channels(db, db_url, tmp_path):
    settings = make_settings(db_url, tmp_path, run_jobs=False, participation_debate_likes=1)
    app = create_app(settings, db)
    make_user(db, "author", "citizen", email="author@example.org", language="ko")
    make_user(db, "texter", "citizen", email="texter@example.org", phone="010-2222-3333", language="ko")
    make_user(db, "reader", "citizen", email="reader@example.org", phone="010-4444-5555", language="en")
    make_user(db, "liker", "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("author", "texter", "reader", "liker")}
    with TestClient(app) as client:
        pid = client.post(f"{API}/proposals", json=IDEA, headers=key["author"]).json()["id"]
        generic = client.put(f"{API}/follows/proposal/{pid}", json={"sms": True}, headers=key["texter"])
        assert generic.status_code == 200, generic.text
        assert client.put(f"{API}/proposals/{pid}/follow", headers=key["reader"]).json()["following"] is True
        assert _followers(db, pid) == [("author", False), ("reader", False), ("texter", True)]
        # The proposal's own endpoint and the generic one are the same row: either one undoes the other.
        assert client.delete(f"{API}/follows/proposal/{pid}", headers=key["reader"]).status_code == 200
        assert client.put(f"{API}/proposals/{pid}/follow", headers=key["reader"]).status_code == 200
        assert client.delete(f"{API}/proposals/{pid}/follow", headers=key["texter"]).status_code == 200
        assert ("texter", True) not in _followers(db, pid)
        client.put(f"{API}/follows/proposal/{pid}", json={"sms": True}, headers=key["texter"])
        listed = client.get(f"{API}/follows", headers=key["reader"]).json()["follows"]
        assert [(f["kind"], f["object_id"]) for f in listed] == [("proposal", pid)]
        assert client.put(f"{API}/proposals/{pid}/like", headers=key["liker"]).json()["status"] == "debate"
    news = _news(db, pid)
    ko = "제안 “공원 산책로에 가로등을 달아 주세요”"
    assert ("email", "author@example.org") in [n[:2] for n in news]
    assert ("sms", "010-2222-3333") in [n[:2] for n in news]  # asked for texts
    assert ("email", "reader@example.org") in [n[:2] for n in news]
    assert "010-4444-5555" not in [n[1] for n in news]  # did not ask for texts
    texter = [body for channel, to, body in news if to == "010-2222-3333"]
    assert len(texter) == 1 and ko in texter[0]
    reader = [body for channel, to, body in news if to == "reader@example.org"]
    assert reader and "has enough likes" in reader[0]  # in the follower's own language


def _token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_the_proposal_pages_follow_button_writes_the_one_follows_row(db, db_url, tmp_path):
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False), db)
    make_user(db, "author", "citizen")
    make_user(db, "neighbour", "citizen", language="ko")
    with TestClient(app) as client:
        pid = client.post(f"{API}/proposals", json=IDEA, headers={"X-API-Key": make_key(db, "author")}).json()["id"]
        client.cookies.set("lang", "ko")
        signin(client, "neighbour")
        path = f"/participation/proposals/{pid}"
        page = client.get(path).text
        assert "이 제안 소식 받기" in page
        followed = client.post(f"{path}/follow", data={"sms": "on", "csrf_token": _token(page)}, follow_redirects=False)
        assert followed.status_code == 303
        assert ("neighbour", True) in _followers(db, pid)
        page = client.get(path).text
        assert "소식 그만 받기" in page
        client.post(f"{path}/unfollow", data={"csrf_token": _token(page)})
        assert _followers(db, pid) == [("author", False)]


def test_dropping_the_old_table_keeps_followers_written_after_the_first_copy(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine, inspect, text

    from smartcity.core.db import alembic_config

    url = f"sqlite:///{tmp_path / 'before.db'}"
    config = alembic_config(url)
    command.upgrade(config, "participation_0005_hearings")  # follows exist, the old table is still written
    command.upgrade(config, "participation_0002_debates")
    engine = create_engine(url)
    with engine.begin() as c:
        insert_users_and_a_proposal(c, ("author", "late"))
        c.execute(
            text(
                "INSERT INTO participation_follows (kind, object_id, user_id, sms, created_at)"
                " VALUES ('proposal', 1, 1, 1, :t)"
            ),
            {"t": NOW},
        )
        c.execute(text("INSERT INTO participation_followers (proposal_id, user_id) VALUES (1, 1), (1, 2)"))
    command.upgrade(config, "heads")
    with engine.connect() as c:
        rows = c.execute(text("SELECT object_id, user_id, sms FROM participation_follows ORDER BY user_id")).all()
        tables = inspect(c).get_table_names()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(1, 1, 1), (1, 2, 0)]  # the one already there kept its choice
    assert "participation_followers" not in tables
