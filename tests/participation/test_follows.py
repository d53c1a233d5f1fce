"""Following (issue 15, item 5) on both stores: a citizen follows a proposal or a hearing through the JSON API
(once, however often asked), the news reaches each follower in their language by web push to their own
browser (delivered to a push service the test runs, and decrypted with the browser's keys), by email, and by
SMS only when they asked; bad kinds, hidden objects and the anonymous are refused in the platform's shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from smartcity.app import create_app
from smartcity.core import push
from smartcity.core.auth import identity_of_user
from smartcity.core.models import AuditEntry, User
from smartcity.core.notify import Notification, deliver_pending
from smartcity.participation import follows
from smartcity.participation.follows import Follow
from smartcity.participation.hearings_models import Hearing
from tests.conftest import make_key, make_settings, make_user
from tests.participation.helpers import insert_users_and_a_proposal
from tests.servers import BrowserPush

API = "/api/participation"
IDEA = {
    "title": "버스정류장에 그늘막을 설치해 주세요",
    "body": "여름마다 정류장에서 기다리기가 너무 덥습니다. 그늘막을 설치해 주시기를 제안합니다.",
    "category": "transport",
}


@pytest.fixture
def world(db, db_url, tmp_path, push_service):
    settings = make_settings(db_url, tmp_path, run_jobs=False, push_http_endpoints=True)
    app = create_app(settings, db)
    make_user(db, "author", "citizen")
    make_user(db, "texter", "citizen", email="texter@example.org", phone="010-1234-5678", language="ko")
    make_user(db, "pusher", "citizen", language="en")
    make_user(db, "official", "staff", department="city-transport")
    make_user(db, "mod", "admin")
    keys = {n: {"X-API-Key": make_key(db, n)} for n in ("author", "texter", "pusher", "official", "mod")}
    with TestClient(app) as client:
        yield client, keys, settings


def _hearing(client, keys) -> int:
    now = datetime.now(UTC)
    times = [(now + timedelta(hours=n)).isoformat() for n in (-1, 1, 2, 3)]
    body = dict(zip(("comments_open_at", "starts_at", "ends_at", "comments_close_at"), times, strict=True))
    made = client.post(
        f"{API}/hearings",
        json={"topic_ko": "정류장 그늘막 공청회", "topic_en": "Bus stop shades", **body},
        headers=keys["official"],
    )
    assert made.status_code == 201, made.text
    return made.json()["id"]


def test_followers_hear_by_push_email_and_sms_only_when_asked(world, db, push_service):
    client, keys, settings = world
    hid = _hearing(client, keys)
    for sms in (False, True, True):  # following again is the same follow, with the latest choice
        state = client.put(f"{API}/follows/hearing/{hid}", json={"sms": sms}, headers=keys["texter"])
    assert state.json() == {"kind": "hearing", "id": hid, "following": True, "sms": True}
    assert client.put(f"{API}/follows/hearing/{hid}", headers=keys["pusher"]).json()["sms"] is False
    with db.session() as s:
        assert len(follows.followers(s, "hearing", hid)) == 3  # the official follows their own hearing
    # The English-speaking follower's phone subscribes to web push (the push service here is plain http).
    phone = BrowserPush(push_service.endpoint("pusher-phone"))
    with db.session() as s:
        pusher = identity_of_user(s.scalar(select(User).where(User.username == "pusher")), "session")
        push.subscribe(s, pusher, phone.subscription(), "phone", allow_http=True)
    with db.session() as s:
        hearing = s.get(Hearing, hid)
        queued = follows.notify_followers(
            s,
            "hearing",
            hid,
            "The minutes of the hearing “{topic}” are published.",
            subject="News of a hearing you follow",
            params=lambda lang: {"topic": hearing.topic_en if lang == "en" else hearing.topic_ko},
        )
    assert queued == 3  # texter: email and SMS; pusher: one browser; the official has no address
    with db.session() as s:
        rows = s.execute(
            select(Notification.channel, Notification.to, Notification.body, Notification.url)
            .where(Notification.ref == f"hearing:{hid}")
            .order_by(Notification.id)
        ).all()
    korean = "공청회 “정류장 그늘막 공청회”의 회의록이 공개되었습니다."
    assert [(c, to, body) for c, to, body, _ in rows if c != "push"] == [
        ("email", "texter@example.org", korean),
        ("sms", "010-1234-5678", korean),
    ]
    assert {url for *_, url in rows} == {f"/participation/hearings/{hid}"}
    deliver_pending(db, settings)
    [(path, _, body)] = push_service.received
    message = json.loads(phone.decrypt(body))
    assert path == "/push/pusher-phone"
    assert "The minutes of the hearing “Bus stop shades” are published." in json.dumps(message, ensure_ascii=False)

    # Stopping: no more news, and the list of what one follows is empty.
    assert client.delete(f"{API}/follows/hearing/{hid}", headers=keys["texter"]).json()["following"] is False
    assert client.get(f"{API}/follows", headers=keys["texter"]).json() == {"follows": []}
    with db.session() as s:
        actions = s.scalars(
            select(AuditEntry.action).where(
                AuditEntry.object_type == "participation.hearing", AuditEntry.actor == "texter"
            )
        ).all()
    assert actions == ["follow", "follow", "unfollow"]  # the third follow changed nothing: not audited


def test_a_proposal_is_followed_and_listed_and_bad_follows_are_refused(world, db):
    client, keys, _ = world
    pid = client.post(f"{API}/proposals", json=IDEA, headers=keys["author"]).json()["id"]
    assert client.put(f"{API}/follows/proposal/{pid}", headers=keys["texter"]).status_code == 200
    listed = client.get(f"{API}/follows", headers=keys["texter"]).json()["follows"]
    assert [(f["kind"], f["object_id"], f["name"], f["url"]) for f in listed] == [
        ("proposal", pid, IDEA["title"], f"/participation/proposals/{pid}")
    ]
    unknown = client.put(f"{API}/follows/ballot/{pid}", headers=keys["texter"])
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_kind"
    missing = client.put(f"{API}/follows/proposal/999999", headers=keys["texter"])
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.put(f"{API}/follows/proposal/{pid}").status_code == 401
    # A hidden proposal is gone for citizens — following included — but not for moderators.
    hidden = client.post(f"{API}/proposals/{pid}/hide", json={"reason": "광고 글"}, headers=keys["mod"])
    assert hidden.status_code == 200, hidden.text
    assert client.put(f"{API}/follows/proposal/{pid}", headers=keys["pusher"]).status_code == 404
    assert client.get(f"{API}/follows", headers=keys["texter"]).json() == {"follows": []}
    assert client.put(f"{API}/follows/proposal/{pid}", headers=keys["mod"]).status_code == 200
    with db.session() as s:
        people = s.scalars(
            select(User.username).join(Follow, Follow.user_id == User.id).where(Follow.kind == "proposal")
        )
        assert sorted(people) == ["author", "mod", "texter"]  # the author follows from the start


def test_every_followable_kind_names_a_table_and_column_the_module_has():
    from smartcity.core.db import Base
    from smartcity.participation import models  # noqa: F401  (every area's tables)

    for kind, followable in follows.FOLLOWABLE.items():
        table = Base.metadata.tables.get(followable.table)
        assert table is not None, kind
        assert {"id", followable.name_column} <= set(table.c.keys()), kind
        assert followable.url.startswith("/participation/") and "{id}" in followable.url, kind


def test_the_migration_moves_proposals_followers_into_the_one_follows_table(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine, text

    from smartcity.core.db import alembic_config

    url = f"sqlite:///{tmp_path / 'before.db'}"
    config = alembic_config(url)
    command.upgrade(config, "participation_0001")  # a store as it was before follows
    engine = create_engine(url)
    with engine.begin() as c:
        insert_users_and_a_proposal(c, ("author", "reader"))
        c.execute(text("INSERT INTO participation_followers (proposal_id, user_id) VALUES (1, 1), (1, 2)"))
    command.upgrade(config, "heads")
    with engine.connect() as c:
        moved = c.execute(text("SELECT kind, object_id, user_id, sms FROM participation_follows ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in moved] == [("proposal", 1, 1, 0), ("proposal", 1, 2, 0)]
