"""Proposals (issue 15, item 1) on both stores: thresholds by setting, the threshold race, windows, the
department's answer, moderation and bad input, through the JSON API as a phone app calls it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, update

from smartcity.app import create_app
from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.db import utcnow
from smartcity.core.models import AuditEntry, District, User
from smartcity.core.notify import Notification
from smartcity.participation import service
from smartcity.participation.models import Like, Participant, Proposal
from tests.conftest import make_key, make_settings, make_user

API = "/api/participation"
IDEA = {
    "title": "강남역 횡단보도를 늘려 주세요",
    "body": "강남역 사거리는 건너는 데 신호를 두 번 기다려야 합니다. 대각선 횡단보도를 제안합니다.",
    "category": "transport",
}


def _app(db, tmp_path, db_url, **rules):
    return create_app(make_settings(db_url, tmp_path, run_jobs=False, **rules), db)


def _people(db, n: int, prefix: str = "p") -> list[Identity]:
    """n citizens, made in one statement (hashing n passwords would take minutes and test nothing here)."""
    with db.session() as s:
        s.execute(
            insert(User),
            [{"username": f"{prefix}{i}", "password_hash": "x", "role": "citizen", "active": True} for i in range(n)],
        )
        rows = s.execute(select(User.id, User.username).where(User.username.like(f"{prefix}%")).order_by(User.id))
        return [Identity(user_id=uid, username=name, role="citizen", via="key") for uid, name in rows]


def _news(db, proposal_id: int) -> list[tuple[str, str]]:
    with db.session() as s:
        rows = s.execute(
            select(Notification.to, Notification.body)
            .where(Notification.ref == f"proposal:{proposal_id}")
            .order_by(Notification.id)
        )
        return [tuple(r) for r in rows]


def test_likes_open_the_debate_and_participants_make_the_answer_due(db, db_url, tmp_path):
    app = _app(db, tmp_path, db_url, participation_debate_likes=3, participation_answer_participants=2)
    make_user(db, "author", "citizen", email="author@example.org", language="ko")
    make_user(db, "staff1", "staff", department="city-transport")
    make_user(db, "staff2", "staff", department="city-fire")
    key = {name: {"X-API-Key": make_key(db, name)} for name in ("author", "staff1", "staff2")}
    for i in range(3):
        make_user(db, f"fan{i}", "citizen")
        key[f"fan{i}"] = {"X-API-Key": make_key(db, f"fan{i}")}
    with TestClient(app) as client:
        created = client.post(f"{API}/proposals", json=IDEA, headers=key["author"])
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        for _ in range(2):  # liking twice is one like
            shown = client.put(f"{API}/proposals/{pid}/like", headers=key["fan0"]).json()
        assert (shown["likes"], shown["status"], shown["liked"]) == (1, "open", True)
        assert client.delete(f"{API}/proposals/{pid}/like", headers=key["fan0"]).json()["likes"] == 0
        client.put(f"{API}/proposals/{pid}/like", headers=key["fan0"])
        assert client.put(f"{API}/proposals/{pid}/like", headers=key["fan1"]).json()["status"] == "open"
        assert not _news(db, pid)
        moved = client.put(f"{API}/proposals/{pid}/like", headers=key["fan2"]).json()
        assert (moved["likes"], moved["status"], moved["department_code"]) == (3, "debate", "city-transport")
        # The debate is open: likes are no longer withdrawn, and the author heard of it, in Korean.
        late = client.delete(f"{API}/proposals/{pid}/like", headers=key["fan2"])
        assert (late.status_code, late.json()["error"]["code"]) == (409, "not_open")
        assert [to for to, _ in _news(db, pid)] == ["author@example.org"]
        assert "공개 토론" in _news(db, pid)[0][1]
        assert [p["id"] for p in client.get(f"{API}/queue", headers=key["staff1"]).json()["proposals"]] == [pid]
        assert client.get(f"{API}/queue", headers=key["staff2"]).json()["proposals"] == []
        # Each participant counts once, however often they speak.
        for _ in range(2):
            said = client.post(f"{API}/proposals/{pid}/comments", json={"body": "좋은 생각입니다"}, headers=key["fan0"])
        assert (said.status_code, said.json()["participants"], said.json()["status"]) == (201, 1, "debate")
        due = client.post(f"{API}/proposals/{pid}/comments", json={"body": "찬성합니다"}, headers=key["fan1"]).json()
        assert (due["participants"], due["status"]) == (2, "answer_due")
        assert due["answer_due_at"] > due["debate_at"]
        answer = {"status": "partly", "reasons": "대각선 횡단보도는 내년 예산에 반영합니다."}
        other = client.post(f"{API}/proposals/{pid}/answer", json=answer, headers=key["staff2"])
        assert (other.status_code, other.json()["error"]["code"]) == (403, "other_department")
        refused = client.post(f"{API}/proposals/{pid}/answer", json=answer, headers=key["fan0"])
        assert refused.status_code == 403
        answered = client.post(f"{API}/proposals/{pid}/answer", json=answer, headers=key["staff1"]).json()
        assert (answered["status"], answered["answer"]["status"]) == ("answered", "partly")
        followed = client.post(
            f"{API}/proposals/{pid}/follow-ups", json={"body": "2027년 3월 설치 완료"}, headers=key["staff1"]
        ).json()
        assert [f["body"] for f in followed["answer"]["follow_ups"]] == ["2027년 3월 설치 완료"]
    assert len(_news(db, pid)) == 3  # debate, answer due, answered: once each
    with db.session() as s:
        moves = audit.entries(s, object_type="participation.proposal")
    assert sorted(e.action for e in moves if e.action == "advance") == ["advance", "advance"]


def test_the_first_thresholds_500_and_5000_work_by_setting(db, db_url, tmp_path):
    _app(db, tmp_path, db_url, participation_debate_likes=500, participation_answer_participants=5000)
    people = _people(db, 500)
    with db.session() as s:
        pid = service.create(s, people[0], service.NewProposal(**IDEA)).id
    for person in people[:499]:
        service.like(db, person, pid)
    with db.session() as s:
        assert (s.get(Proposal, pid).likes, s.get(Proposal, pid).status) == (499, "open")  # 100 is not the rule
    service.like(db, people[499], pid)
    with db.session() as s:
        assert s.get(Proposal, pid).status == "debate"
        # 4,998 participants already in the debate (as rows and count); the last two speak through the service.
        crowd = _people(db, 5000, prefix="crowd")
        s.execute(insert(Participant), [{"proposal_id": pid, "user_id": p.user_id} for p in crowd[:4998]])
        s.execute(update(Proposal).where(Proposal.id == pid).values(participants=4998))
    service.comment(db, crowd[4998], pid, "4,999번째 참여")
    with db.session() as s:
        assert s.get(Proposal, pid).status == "debate"
    service.comment(db, crowd[4999], pid, "5,000번째 참여")
    with db.session() as s:
        assert (s.get(Proposal, pid).participants, s.get(Proposal, pid).status) == (5000, "answer_due")


def test_two_last_likes_at_once_move_the_proposal_once(db, db_url, tmp_path):
    _app(db, tmp_path, db_url, participation_debate_likes=2)
    people = _people(db, 3 * 6)
    for round_ in range(6):
        author, first, second = people[3 * round_ : 3 * round_ + 3]
        with db.session() as s:
            author_row = s.get(User, author.user_id)
            author_row.email = f"a{round_}@example.org"
            idea = {**IDEA, "title": f"{IDEA['title']} ({round_ + 1})"}  # the same title twice is refused
            pid = service.create(s, author, service.NewProposal(**idea)).id
        service.like(db, author, pid)
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def like(person, pid=pid, start=start, errors=errors):
            start.wait()
            try:
                service.like(db, person, pid)
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=like, args=(p,)) for p in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # The like that came second found the likes already closed: refused, its row rolled back.
        assert [getattr(e, "code", e) for e in errors] == ["not_open"]
        with db.session() as s:
            proposal = s.get(Proposal, pid)
            likes = s.scalar(select(func.count()).select_from(Like).where(Like.proposal_id == pid))
            advances = s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.object_id == str(pid), AuditEntry.action == "advance")
            )
        assert (proposal.status, proposal.likes, likes, advances) == ("debate", 2, 2, 1)
        assert len(_news(db, pid)) == 1


def test_a_proposal_short_of_its_threshold_expires_at_the_end_of_its_window(db, db_url, tmp_path):
    app = _app(db, tmp_path, db_url, participation_window_days=7)
    make_user(db, "author", "citizen", email="author@example.org")
    key = {"X-API-Key": make_key(db, "author")}
    with TestClient(app) as client:
        pid = client.post(f"{API}/proposals", json=IDEA, headers=key).json()["id"]
        with db.session() as s:
            created = s.get(Proposal, pid).created_at
        assert service.expire(db, now=created + timedelta(days=6)) == []
        assert service.expire(db, now=created + timedelta(days=7, seconds=1)) == [pid]
        shown = client.get(f"{API}/proposals/{pid}").json()
        assert shown["status"] == "expired"
        late = client.put(f"{API}/proposals/{pid}/like", headers=key)
        assert (late.status_code, late.json()["error"]["code"]) == (409, "not_open")
        assert client.get(f"{API}/proposals/{pid}").json()["likes"] == 0
    assert [to for to, _ in _news(db, pid)] == ["author@example.org"]


def test_moderators_hide_with_a_reason_and_citizens_report_abuse_once(db, db_url, tmp_path):
    app = _app(db, tmp_path, db_url)
    make_user(db, "author", "citizen")
    make_user(db, "neighbour", "citizen")
    make_user(db, "admin1", "admin")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("author", "neighbour", "admin1")}
    with TestClient(app) as client:
        pid = client.post(f"{API}/proposals", json=IDEA, headers=key["author"]).json()["id"]
        for _ in range(2):
            client.post(f"{API}/proposals/{pid}/abuse", json={"reason": "광고입니다"}, headers=key["neighbour"])
        reports = client.get(f"{API}/abuse", headers=key["admin1"]).json()["reports"]
        assert reports == [{"proposal_id": pid, "count": 1, "reasons": ["광고입니다"]}]
        assert client.get(f"{API}/abuse", headers=key["neighbour"]).status_code == 403
        denied = client.post(f"{API}/proposals/{pid}/hide", json={"reason": "spam"}, headers=key["neighbour"])
        assert denied.status_code == 403
        hidden = client.post(f"{API}/proposals/{pid}/hide", json={"reason": "상업 광고"}, headers=key["admin1"])
        assert (hidden.json()["hidden"], hidden.json()["hidden_reason"]) == (True, "상업 광고")
        assert client.get(f"{API}/proposals/{pid}").status_code == 404
        assert client.get(f"{API}/proposals").json()["proposals"] == []
        assert client.get(f"{API}/proposals/{pid}", headers=key["admin1"]).status_code == 200
    with db.session() as s:
        entries = audit.entries(s, object_type="participation.proposal")
    hides = [(e.actor, e.detail) for e in entries if e.action == "hide"]
    assert hides == [("admin1", {"reason": "상업 광고"})]


def test_a_proposal_names_its_district_by_code(db, db_url, tmp_path):
    """The district is named by its code (as the form and the app send it), not by the table's row id."""
    app = _app(db, tmp_path, db_url)
    make_user(db, "author", "citizen")
    with TestClient(app) as client:
        with db.session() as s:
            first, last = s.execute(select(func.min(District.code), func.max(District.code))).one()
        key = {"X-API-Key": make_key(db, "author")}
        made = client.post(f"{API}/proposals", json={**IDEA, "district_code": last}, headers=key)
        assert made.status_code == 201, made.text
        assert client.get(f"{API}/proposals/{made.json()['id']}").json()["district_code"] == last
        other = {**IDEA, "title": "다른 구의 제안입니다", "district_code": first}
        assert client.post(f"{API}/proposals", json=other, headers=key).json()["district_code"] == first


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"title": "짧음"}, "invalid"),
        ({"category": "weather"}, "invalid"),
        ({"district_code": "99999"}, "unknown_district"),
        ({"lat": 35.1, "lon": 129.0}, "outside_city"),  # Busan
        ({"lat": 37.5}, "invalid"),
    ],
)
def test_bad_proposals_are_refused_and_nothing_is_stored(db, db_url, tmp_path, change, code):
    app = _app(db, tmp_path, db_url)
    make_user(db, "author", "citizen")
    with TestClient(app) as client:
        answer = client.post(f"{API}/proposals", json={**IDEA, **change}, headers={"X-API-Key": make_key(db, "author")})
        assert (answer.status_code, answer.json()["error"]["code"]) == (422, code), answer.text
        assert client.post(f"{API}/proposals", json=IDEA).status_code == 401
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Proposal)) == 0


def test_spam_is_refused_by_a_daily_limit_and_duplicate_titles_and_audited(db, db_url, tmp_path):
    app = _app(db, tmp_path, db_url, participation_proposals_per_day=2)
    make_user(db, "author", "citizen")
    make_user(db, "other", "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("author", "other")}
    with TestClient(app) as client:
        first = client.post(f"{API}/proposals", json=IDEA, headers=key["author"]).json()["id"]
        # Case and spacing do not make a new title.
        twin = {**IDEA, "title": "  강남역  횡단보도를 늘려 주세요 "}
        copied = client.post(f"{API}/proposals", json=twin, headers=key["other"])
        assert (copied.status_code, copied.json()["error"]["code"]) == (409, "duplicate")
        assert copied.json()["error"]["details"]["proposal_id"] == first
        assert (
            client.post(
                f"{API}/proposals", json={**IDEA, "title": "Gangnam crossing"}, headers=key["author"]
            ).status_code
            == 201
        )
        over = client.post(f"{API}/proposals", json={**IDEA, "title": "세 번째 제안입니다"}, headers=key["author"])
        assert (over.status_code, over.json()["error"]["code"]) == (429, "too_many_proposals")
        upper = client.post(f"{API}/proposals", json={**IDEA, "title": "GANGNAM  Crossing"}, headers=key["other"])
        assert (upper.status_code, upper.json()["error"]["code"]) == (409, "duplicate")
        # Editing into another proposal's title is refused too.
        edit = {"title": IDEA["title"], "body": IDEA["body"]}
        other = client.post(f"{API}/proposals", json={**IDEA, "title": "다른 제목의 제안"}, headers=key["other"]).json()
        moved = client.patch(f"{API}/proposals/{other['id']}", json=edit, headers=key["other"])
        assert (moved.status_code, moved.json()["error"]["code"]) == (409, "duplicate")
        # A day later the author may propose again.
        with db.session() as s:
            day_ago = utcnow() - timedelta(days=1, seconds=1)
            s.execute(update(Proposal).values(created_at=day_ago))
        assert (
            client.post(
                f"{API}/proposals", json={**IDEA, "title": "세 번째 제안입니다"}, headers=key["author"]
            ).status_code
            == 201
        )
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Proposal)) == 4
        refusals = [e.detail for e in audit.entries(s, object_type="participation.proposal") if e.action == "refuse"]
    assert sorted(d["why"] for d in refusals) == ["duplicate", "duplicate", "too_many_proposals"]


def test_the_author_edits_while_open_and_every_version_is_kept(db, db_url, tmp_path):
    app = _app(db, tmp_path, db_url, participation_debate_likes=1)
    make_user(db, "author", "citizen")
    make_user(db, "fan", "citizen")
    make_user(db, "staff1", "staff", department="city-transport")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("author", "fan", "staff1")}
    with TestClient(app) as client:
        pid = client.post(f"{API}/proposals", json=IDEA, headers=key["author"]).json()["id"]
        better = {"title": IDEA["title"], "body": IDEA["body"] + " 보행 신호도 늘려 주세요."}
        refused = client.patch(f"{API}/proposals/{pid}", json=better, headers=key["fan"])
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "not_author")
        short = client.patch(f"{API}/proposals/{pid}", json={**better, "body": "짧다"}, headers=key["author"])
        assert short.status_code == 422
        edited = client.patch(f"{API}/proposals/{pid}", json=better, headers=key["author"]).json()
        assert edited["body"].endswith("보행 신호도 늘려 주세요.") and edited["edited_at"]
        public = client.get(f"{API}/proposals/{pid}/history").json()["versions"]
        assert [v["body"] for v in public] == [IDEA["body"], better["body"]]
        assert all(v["diff"] == [] for v in public)
        staff = client.get(f"{API}/proposals/{pid}/history", headers=key["staff1"]).json()["versions"]
        assert "+" + better["body"] in staff[1]["diff"] and "-" + IDEA["body"] in staff[1]["diff"]
        client.put(f"{API}/proposals/{pid}/like", headers=key["fan"])
        late = client.patch(
            f"{API}/proposals/{pid}", json={**better, "title": "새 제목을 붙입니다"}, headers=key["author"]
        )
        assert (late.status_code, late.json()["error"]["code"]) == (409, "not_open")
        assert client.get(f"{API}/proposals/{pid}").json()["title"] == IDEA["title"]
    with db.session() as s:
        assert [e.action for e in audit.entries(s, object_type="participation.proposal")].count("edit") == 1
