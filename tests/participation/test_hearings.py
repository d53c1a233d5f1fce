"""Public hearings (issue 15, item 5) on both stores, through the JSON API as a phone app calls it: the
schedule's periods decide what is taken (comments before and after, questions before and during the live
session), one upvote per person even when sent at once, the department's official marks and answers, the
moderator hides, the minutes end it read-only; documents are PDF or text only."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from smartcity.app import create_app
from smartcity.core.auth import identity_of_user
from smartcity.core.city import load_profile
from smartcity.core.demo import load_demo
from smartcity.core.models import AuditEntry, User
from smartcity.core.module import datasets, discover
from smartcity.core.notify import Notification
from smartcity.opendata import feeds
from smartcity.participation import hearings
from smartcity.participation.hearings_models import Hearing
from tests.conftest import make_key, make_settings, make_user

API = "/api/participation/hearings"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _app(db, tmp_path, db_url, **settings):
    return create_app(make_settings(db_url, tmp_path, run_jobs=False, **settings), db)


HOURS = {  # comments open, session starts, session ends, comments close: hours from now
    "upcoming": (1, 2, 3, 4),
    "before": (-1, 1, 2, 3),
    "live": (-2, -1, 1, 2),
    "after": (-3, -2, -1, 1),
    "closed": (-4, -3, -2, -1),
}
FIELDS = ("comments_open_at", "starts_at", "ends_at", "comments_close_at")


def _schedule(phase: str) -> dict[str, str]:
    """A schedule that puts a hearing in `phase` now (times with their offset, as an app sends them)."""
    now = datetime.now(UTC)
    return {k: (now + timedelta(hours=n)).isoformat() for k, n in zip(FIELDS, HOURS[phase], strict=True)}


def _move(db, hearing_id: int, phase: str) -> None:
    """The clock moves on: the hearing's schedule is set so that it is now in `phase`."""
    times = {k: datetime.fromisoformat(v) for k, v in _schedule(phase).items()}
    with db.session() as s:
        s.execute(update(Hearing).where(Hearing.id == hearing_id).values(**times))


@pytest.fixture
def world(db, db_url, tmp_path):
    app = _app(db, tmp_path, db_url, participation_hearing_document_max_bytes=2000)
    make_user(db, "official", "staff", department="city-transport", language="ko")
    make_user(db, "other-dept", "staff", department="city-fire")
    make_user(db, "asker", "citizen", email="asker@example.org", language="ko")
    make_user(db, "fan", "citizen")
    make_user(db, "mod", "admin")
    keys = {n: {"X-API-Key": make_key(db, n)} for n in ("official", "other-dept", "asker", "fan", "mod")}
    with TestClient(app) as client:
        yield client, keys, app


def _create(client, keys, phase: str, **extra) -> dict:
    body = {"topic_ko": "한강공원 조명 개선 공청회", "topic_en": "Han River park lighting", **_schedule(phase), **extra}
    made = client.post(API, json=body, headers=keys["official"])
    assert made.status_code == 201, made.text
    return made.json()


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


def test_a_hearing_runs_from_comments_to_live_questions_to_minutes(world, db):
    client, keys, _ = world
    hearing = _create(client, keys, "before")
    hid = hearing["id"]
    assert hearing["phase"] == "before" and hearing["following"]  # the official follows their hearing
    assert hearing["next_change"] == hearing["starts_at"]  # when the live page reads itself again

    # Before the session: comments and questions are taken; nobody answers yet.
    said = client.post(f"{API}/{hid}/comments", json={"body": "야간에 산책로가 너무 어둡습니다."}, headers=keys["fan"])
    assert said.status_code == 201 and said.json()["period"] == "before"
    q = client.post(f"{API}/{hid}/questions", json={"body": "공사는 언제 시작하나요?"}, headers=keys["asker"])
    assert q.status_code == 201, q.text
    qid = q.json()["id"]
    early = client.put(f"{API}/{hid}/answering", json={"question": qid}, headers=keys["official"])
    _error(early, 409, "not_live")

    # The live session: comments wait, questions and upvotes come, the official marks and answers.
    _move(db, hid, "live")
    _error(
        client.post(f"{API}/{hid}/comments", json={"body": "지금 의견"}, headers=keys["fan"]), 409, "comments_closed"
    )
    other = client.post(f"{API}/{hid}/questions", json={"body": "조명 색온도는 어떻게 되나요?"}, headers=keys["fan"])
    for _ in range(2):  # upvoting twice is one upvote
        voted = client.put(f"{API}/{hid}/questions/{qid}/vote", headers=keys["fan"])
    assert voted.json() == {"question": qid, "votes": 1, "voted": True}
    shown = client.get(f"{API}/{hid}").json()
    assert [x["id"] for x in shown["questions"]] == [qid, other.json()["id"]]  # the upvoted first
    refused = client.put(f"{API}/{hid}/answering", json={"question": qid}, headers=keys["other-dept"])
    _error(refused, 403, "other_department")
    marked = client.put(f"{API}/{hid}/answering", json={"question": qid}, headers=keys["official"]).json()
    assert marked["answering"] == qid and marked["questions"][0]["answering"]
    answer = {"answer": "내년 3월에 시작합니다."}
    answered = client.post(f"{API}/{hid}/questions/{qid}/answer", json=answer, headers=keys["official"])
    assert answered.status_code == 200 and answered.json()["answer"] == "내년 3월에 시작합니다."
    assert client.get(f"{API}/{hid}").json()["answering"] is None  # answered: no longer being answered
    with db.session() as s:  # the asker follows since asking and heard of it, in Korean
        told = s.execute(select(Notification.to, Notification.body).where(Notification.ref == f"hearing:{hid}")).all()
    assert told == [("asker@example.org", "공청회 “한강공원 조명 개선 공청회”의 질문에 답변이 달렸습니다.")]

    # After the session: comments again (the period after), questions no more.
    _move(db, hid, "after")
    after = client.post(f"{API}/{hid}/comments", json={"body": "답변 감사합니다."}, headers=keys["asker"])
    assert after.json()["period"] == "after"
    _error(
        client.post(f"{API}/{hid}/questions", json={"body": "늦은 질문입니다"}, headers=keys["fan"]),
        409,
        "questions_closed",
    )
    _error(client.put(f"{API}/{hid}/questions/{qid}/vote", headers=keys["asker"]), 409, "questions_closed")
    too_soon = client.post(
        f"{API}/{hid}/minutes", data={"text": "## 회의 결과\n\n충분히 긴 회의록"}, headers=keys["official"]
    )
    _error(too_soon, 409, "not_closed")

    # The end: the minutes, then read-only.
    _move(db, hid, "closed")
    _error(
        client.post(f"{API}/{hid}/comments", json={"body": "마감 후 의견"}, headers=keys["fan"]), 409, "comments_closed"
    )
    minutes = "## 회의 결과\n\n<script>alert(1)</script> [링크](javascript:alert(1)) **보류**"
    done = client.post(
        f"{API}/{hid}/minutes",
        data={"text": minutes},
        files={"file": ("회의록.pdf", PDF, "application/pdf")},
        headers=keys["official"],
    )
    assert done.status_code == 200, done.text
    assert done.json()["phase"] == "finished" and done.json()["minutes"] == minutes
    assert done.json()["next_change"] is None
    html = str(hearings.render_minutes(minutes))
    assert "<h2>회의 결과</h2>" in html and "<strong>보류</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and 'href="javascript' not in html
    for late in (
        client.post(f"{API}/{hid}/comments", json={"body": "회의록 뒤 의견"}, headers=keys["fan"]),
        client.post(f"{API}/{hid}/questions/{qid}/answer", json=answer, headers=keys["official"]),
        client.post(
            f"{API}/{hid}/documents", files={"file": ("a.txt", b"text", "text/plain")}, headers=keys["official"]
        ),
        client.post(f"{API}/{hid}/minutes", data={"text": "다시 쓰는 회의록입니다"}, headers=keys["official"]),
    ):
        assert late.status_code == 409 and late.json()["error"]["code"] == "read_only", late.text
    with db.session() as s:
        actions = s.scalars(
            select(AuditEntry.action).where(
                AuditEntry.object_type == "participation.hearing", AuditEntry.object_id == str(hid)
            )
        ).all()
    assert {"create", "answering", "answer", "add_document", "publish_minutes"} <= set(actions)


def test_one_upvote_per_person_even_when_sent_at_once(world, db):
    client, keys, _ = world
    hid = _create(client, keys, "live")["id"]
    qid = client.post(f"{API}/{hid}/questions", json={"body": "동시에 공감하면?"}, headers=keys["asker"]).json()["id"]
    with db.session() as s:
        people = {u.username: identity_of_user(u, "key") for u in s.scalars(select(User))}
    barrier = threading.Barrier(6)
    answers = []

    def upvote(who: str) -> None:  # each on a connection of its own, all at once
        barrier.wait()
        answers.append(hearings.upvote(db, people[who], hid, qid))

    threads = [threading.Thread(target=upvote, args=(who,)) for who in ("fan",) * 4 + ("mod", "official")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 6 and max(answers) == 3
    assert client.get(f"{API}/{hid}").json()["questions"][0]["votes"] == 3  # fan once, mod, official
    back = client.delete(f"{API}/{hid}/questions/{qid}/vote", headers=keys["fan"])
    assert back.json() == {"question": qid, "votes": 2, "voted": False}


def test_the_moderator_hides_a_question_with_a_reason_and_citizens_no_longer_see_it(world, db):
    client, keys, _ = world
    hid = _create(client, keys, "live")["id"]
    qid = client.post(f"{API}/{hid}/questions", json={"body": "광고 글입니다 010-0000"}, headers=keys["fan"]).json()[
        "id"
    ]
    client.put(f"{API}/{hid}/answering", json={"question": qid}, headers=keys["official"])
    _error(
        client.post(f"{API}/{hid}/questions/{qid}/hide", json={"reason": "광고"}, headers=keys["asker"]),
        403,
        "forbidden",
    )
    hidden = client.post(f"{API}/{hid}/questions/{qid}/hide", json={"reason": "광고 글"}, headers=keys["mod"])
    assert hidden.status_code == 200, hidden.text
    seen = hidden.json()["questions"][0]
    assert (seen["hidden"], seen["hidden_reason"]) == (True, "광고 글") and hidden.json()["answering"] is None
    citizen = client.get(f"{API}/{hid}", headers=keys["asker"]).json()
    assert citizen["questions"] == []
    _error(client.put(f"{API}/{hid}/questions/{qid}/vote", headers=keys["asker"]), 404, "not_found")
    with db.session() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "hide", AuditEntry.object_id == str(hid)))
    assert entry is not None and entry.detail == {"question": qid, "reason": "광고 글"}


def test_documents_are_pdf_or_text_kept_as_checked_and_served_without_sniffing(world, db, tmp_path):
    client, keys, _ = world
    hid = _create(client, keys, "upcoming")["id"]
    docs = f"{API}/{hid}/documents"
    pdf = client.post(docs, files={"file": ("계획서.pdf", PDF, "application/pdf")}, headers=keys["official"])
    assert pdf.status_code == 201, pdf.text
    korean = "공청회 자료: 조명 12곳".encode("cp949")  # what Korean Windows saves
    text = client.post(docs, files={"file": ("자료.txt", korean, "text/plain")}, headers=keys["official"]).json()
    page = client.get(text["url"])
    assert page.text == "공청회 자료: 조명 12곳" and page.headers["content-type"] == "text/plain; charset=utf-8"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get(pdf.json()["url"]).content == PDF
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    _error(client.post(docs, files={"file": ("x.png", png, "image/png")}, headers=keys["official"]), 422, "file_type")
    _error(
        client.post(docs, files={"file": ("big.txt", b"a" * 2001, "text/plain")}, headers=keys["official"]),
        413,
        "too_large",
    )
    _error(
        client.post(docs, files={"file": ("x.txt", b"hello", "text/plain")}, headers=keys["asker"]), 403, "forbidden"
    )
    stored = list((Path(tmp_path) / "var" / "participation" / "hearings" / str(hid)).iterdir())
    assert len(stored) == 2  # nothing kept of the refused ones
    assert [d["filename"] for d in client.get(f"{API}/{hid}").json()["documents"]] == ["계획서.pdf", "자료.txt"]


def test_a_schedule_out_of_order_or_without_offsets_is_refused(world):
    client, keys, _ = world
    times = _schedule("before")
    backwards = {**times, "ends_at": times["comments_open_at"]}
    made = client.post(API, json={"topic_ko": "순서가 틀린 공청회", **backwards}, headers=keys["official"])
    _error(made, 422, "schedule")
    naive = {k: v[:19] for k, v in times.items()}
    _error(
        client.post(API, json={"topic_ko": "시간대 없는 공청회", **naive}, headers=keys["official"]), 422, "naive_time"
    )
    _error(client.post(API, json={"topic_ko": "시민이 여는 공청회", **times}, headers=keys["asker"]), 403, "forbidden")
    _error(client.get(f"{API}/999999"), 404, "not_found")


def test_followers_hear_when_the_live_session_begins_once(world, db):
    client, keys, _ = world
    hid = _create(client, keys, "before")["id"]
    assert client.put(f"/api/participation/follows/hearing/{hid}", headers=keys["asker"]).json()["following"]
    assert hearings.announce_live(db) == []  # not begun yet
    _move(db, hid, "live")
    assert hearings.announce_live(db) == [hid]
    assert hearings.announce_live(db) == []  # told once
    with db.session() as s:
        told = s.scalars(select(Notification.body).where(Notification.to == "asker@example.org")).all()
    assert told == ["공청회 “한강공원 조명 개선 공청회”가 시작되었습니다. 지금 질문해 주세요."]


def test_the_demo_has_a_live_hearing_and_one_with_its_minutes(db, demo_lines, client):
    lines = demo_lines
    assert "demo hearings: one in its live session, one with its minutes" in lines, lines
    found = {h["phase"]: h for h in client.get(API).json()["hearings"]}
    assert set(found) == {"live", "finished"}
    live = client.get(f"{API}/{found['live']['id']}").json()
    votes = [q["votes"] for q in live["questions"] if not q["answer"]]
    assert live["questions"][0]["answering"] and votes == sorted(votes, reverse=True)
    assert any(q["answer"] for q in live["questions"]) and live["documents"]
    client.cookies.set("lang", "ko")
    page = client.get(f"/participation/hearings/{found['finished']['id']}").text
    assert "회의록 공개됨" in page and "<strong>보류</strong>" in page
    assert list(load_demo(db, load_profile("seoul"))).count("demo hearings: already there") == 1


def test_the_open_data_rows_count_what_is_shown_and_name_nobody(world, db):
    client, keys, _ = world
    hid = _create(client, keys, "live")["id"]
    ids = [
        client.post(f"{API}/{hid}/questions", json={"body": f"질문 {n}번입니다"}, headers=keys[who]).json()["id"]
        for n, who in enumerate(("asker", "fan", "asker"))
    ]
    client.put(f"{API}/{hid}/questions/{ids[0]}/vote", headers=keys["fan"])
    client.put(f"{API}/{hid}/questions/{ids[1]}/vote", headers=keys["asker"])
    client.post(f"{API}/{hid}/questions/{ids[0]}/answer", json={"answer": "답변입니다"}, headers=keys["official"])
    client.post(f"{API}/{hid}/questions/{ids[1]}/hide", json={"reason": "광고 글"}, headers=keys["mod"])
    _move(db, hid, "after")
    client.post(f"{API}/{hid}/comments", json={"body": "후기입니다"}, headers=keys["fan"])
    with db.session() as s:
        [row] = list(hearings.open_rows(s))
    counts = {k: row[k] for k in ("phase", "questions", "answered", "upvotes", "comments_before", "comments_after")}
    assert counts == {
        "phase": "after",
        "questions": 2,
        "answered": 1,
        "upvotes": 1,
        "comments_before": 0,
        "comments_after": 1,
    }
    assert not {"asker", "fan", "official", "asker@example.org"} & {str(v) for v in row.values()}
    # The module declares the rows as an open dataset; the catalogue publishes them (nothing personal refused).
    participation = next(m for m in discover() if m.name == "participation")
    [declared] = [d for d in datasets([participation]) if d.name.endswith("hearings")]
    published = feeds.publish_feed(db, declared, [participation])
    assert (published.rows, published.problem_count) == (1, 0)


def _published(client, name: str) -> list[dict]:
    package = client.get("/api/3/action/package_show", params={"id": name}).json()
    assert package["success"], package
    rid = package["result"]["resources"][0]["id"]
    return client.get("/api/3/action/datastore_search", params={"resource_id": rid}).json()["result"]["records"]


def _refreshed_until(db, client, wanted) -> list[dict]:
    """The refresh job's pass (publishing what an event marked) until the catalogue's rows satisfy `wanted`;
    the events reach the handler after the commit (PostgreSQL: through LISTEN, a moment later)."""
    deadline = time.monotonic() + 10
    while True:
        feeds.refresh_all(db, only_due=True)
        rows = _published(client, "participation-hearings")
        if wanted(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_the_hearings_dataset_is_republished_after_a_hearing_event_not_only_on_schedule(world, db):
    client, keys, _ = world
    participation = next(m for m in discover() if m.name == "participation")
    [declared] = [d for d in datasets([participation]) if d.name.endswith("hearings")]
    assert feeds.publish_feed(db, declared, [participation]).rows == 0  # published just now: not stale
    hid = _create(client, keys, "live")["id"]
    rows = _refreshed_until(db, client, lambda rows: any(r["id"] == hid for r in rows))
    assert [(r["id"], r["phase"], r["questions"]) for r in rows] == [(hid, "live", 0)]
    asked = client.post(f"{API}/{hid}/questions", json={"body": "보행로 조명은 언제 바뀌나요?"}, headers=keys["asker"])
    assert asked.status_code == 201, asked.text
    rows = _refreshed_until(db, client, lambda rows: rows and rows[0]["questions"] == 1)
    assert [(r["id"], r["questions"]) for r in rows] == [(hid, 1)]
