"""Debates (issue 15, item 2) on both stores, through the JSON API as a phone app calls it: replies nest to the
depth the city allows, comments are voted up and down (one vote per person, changeable, withdrawable), sorted
newest or most supported with the author's words and the official answer pinned, and the debate takes words
only between its opening and its closing."""

from __future__ import annotations

import threading
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from smartcity.app import create_app
from smartcity.core.auth import Identity
from smartcity.core.db import utcnow
from smartcity.participation import service
from smartcity.participation.models import Comment, CommentVote, Proposal
from tests.conftest import make_key, make_settings, make_user

API = "/api/participation"
IDEA = {
    "title": "망원시장 앞 자전거 도로를 이어 주세요",
    "body": "망원시장 앞에서 자전거 도로가 끊겨 차도로 내려가야 합니다. 합정역까지 이어 주시기를 제안합니다.",
    "category": "transport",
}


def _debating(db, db_url, tmp_path, people: list[str], **rules):
    """An app whose first proposal (by people[0]) is in debate after one like; keys by name."""
    settings = dict(participation_debate_likes=1, participation_answer_participants=50, **rules)
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False, **settings), db)
    for name in people:
        make_user(db, name, "citizen")
    key = {name: {"X-API-Key": make_key(db, name)} for name in people}
    return app, key


def _open_debate(client, key, author: str, liker: str) -> int:
    pid = client.post(f"{API}/proposals", json=IDEA, headers=key[author]).json()["id"]
    assert client.put(f"{API}/proposals/{pid}/like", headers=key[liker]).json()["status"] == "debate"
    return pid


def _say(client, key, who: str, pid: int, text: str, parent: int | None = None):
    return client.post(f"{API}/proposals/{pid}/comments", json={"body": text, "parent_id": parent}, headers=key[who])


def test_replies_nest_to_the_depth_allowed_and_a_participant_counts_once(db, db_url, tmp_path):
    app, key = _debating(db, db_url, tmp_path, ["author", "kim", "lee"], participation_reply_depth=2)
    with TestClient(app) as client:
        pid = _open_debate(client, key, "author", "kim")
        top = _say(client, key, "kim", pid, "좋은 제안입니다")
        assert top.status_code == 201, top.text
        first = top.json()["comment_id"]
        reply = _say(client, key, "lee", pid, "저도 그렇게 생각합니다", first).json()["comment_id"]
        deeper = _say(client, key, "kim", pid, "감사합니다", reply)
        assert deeper.status_code == 201 and deeper.json()["participants"] == 2  # kim spoke twice: once counted
        too_deep = _say(client, key, "lee", pid, "한 단계 더", deeper.json()["comment_id"])
        assert (too_deep.status_code, too_deep.json()["error"]["code"]) == (422, "too_deep")
        other = client.post(f"{API}/proposals", json={**IDEA, "title": "다른 제안입니다"}, headers=key["lee"])
        assert _say(client, key, "lee", pid, "첫 댓글에 두 번째로 답합니다", first).status_code == 201
        misplaced = client.post(
            f"{API}/proposals/{other.json()['id']}/comments",
            json={"body": "엉뚱한 곳", "parent_id": first},
            headers=key["lee"],
        )
        assert (misplaced.status_code, misplaced.json()["error"]["code"]) == (404, "not_found")
        tree = client.get(f"{API}/proposals/{pid}/comments").json()
        assert [c["id"] for c in tree["comments"]] == [first]
        under = tree["comments"][0]["replies"]
        assert [(c["id"], c["depth"]) for c in under][0] == (reply, 1)
        assert under[0]["replies"][0]["depth"] == 2
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Comment)) == 4  # the refused ones left nothing
        assert s.get(Proposal, pid).participants == 2


def test_votes_on_comments_are_one_per_person_changeable_and_withdrawable(db, db_url, tmp_path):
    app, key = _debating(db, db_url, tmp_path, ["author", "kim", "lee", "park"])
    with TestClient(app) as client:
        pid = _open_debate(client, key, "author", "kim")
        cid = _say(client, key, "kim", pid, "찬성합니다").json()["comment_id"]
        for _ in range(2):
            voted = client.put(f"{API}/comments/{cid}/vote", json={"value": 1}, headers=key["lee"]).json()
        assert (voted["up"], voted["down"], voted["my_vote"]) == (1, 0, 1)
        client.put(f"{API}/comments/{cid}/vote", json={"value": 1}, headers=key["park"])
        changed = client.put(f"{API}/comments/{cid}/vote", json={"value": -1}, headers=key["lee"]).json()
        assert (changed["up"], changed["down"]) == (1, 1)
        gone = client.delete(f"{API}/comments/{cid}/vote", headers=key["lee"]).json()
        assert (gone["up"], gone["down"], gone["my_vote"]) == (1, 0, 0)
        bad = client.put(f"{API}/comments/{cid}/vote", json={"value": 2}, headers=key["lee"])
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid")
        assert client.put(f"{API}/comments/{cid}/vote", json={"value": 1}).status_code == 401
        assert client.put(f"{API}/comments/999999/vote", json={"value": 1}, headers=key["lee"]).status_code == 404
        mine = client.get(f"{API}/proposals/{pid}/comments", headers=key["park"]).json()["comments"][0]
        assert (mine["up"], mine["my_vote"]) == (1, 1)
        assert client.get(f"{API}/proposals/{pid}/comments").json()["comments"][0]["my_vote"] == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CommentVote)) == 1


def test_concurrent_votes_on_one_comment_are_all_counted(db, db_url, tmp_path):
    app, key = _debating(db, db_url, tmp_path, ["author", "kim"])
    with TestClient(app) as client:
        pid = _open_debate(client, key, "author", "kim")
        cid = _say(client, key, "kim", pid, "찬성합니다").json()["comment_id"]
    voters = []
    for i in range(8):
        uid = make_user(db, f"voter{i}", "citizen")
        voters.append(Identity(user_id=uid, username=f"voter{i}", role="citizen", via="key"))
    start = threading.Barrier(len(voters))
    errors: list[BaseException] = []

    def vote(person: Identity, value: int) -> None:
        start.wait()
        try:
            service.vote_comment(db, person, cid, value)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=vote, args=(p, 1 if i % 4 else -1)) for i, p in enumerate(voters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with db.session() as s:
        row = s.get(Comment, cid)
        assert (row.up, row.down) == (6, 2)


def test_sorting_pins_the_author_and_the_official_answer(db, db_url, tmp_path):
    app, key = _debating(db, db_url, tmp_path, ["author", "kim", "lee", "park", "choi"])
    make_user(db, "staff1", "staff", department="city-transport")
    key["staff1"] = {"X-API-Key": make_key(db, "staff1")}
    with TestClient(app) as client:
        pid = _open_debate(client, key, "author", "kim")
        old = _say(client, key, "kim", pid, "첫 번째 의견입니다").json()["comment_id"]
        liked = _say(client, key, "lee", pid, "두 번째 의견입니다").json()["comment_id"]
        new = _say(client, key, "park", pid, "세 번째 의견입니다").json()["comment_id"]
        own = _say(client, key, "author", pid, "제안자로서 덧붙입니다").json()["comment_id"]
        for who in ("kim", "park", "choi"):
            client.put(f"{API}/comments/{liked}/vote", json={"value": 1}, headers=key[who])
        client.put(f"{API}/comments/{new}/vote", json={"value": -1}, headers=key["choi"])

        def order(sort: str) -> list[int]:
            shown = client.get(f"{API}/proposals/{pid}/comments", params={"sort": sort}).json()
            return [c["id"] for c in shown["comments"]]

        assert order("newest") == [own, new, liked, old]
        assert order("supported") == [own, liked, old, new]
        assert order("oldest") == [own, old, liked, new]
        bad = client.get(f"{API}/proposals/{pid}/comments", params={"sort": "random"})
        assert bad.status_code == 422 and "error" in bad.json()
        shown = client.get(f"{API}/proposals/{pid}/comments").json()
        assert shown["comments"][0]["by_author"] and shown["answer"] is None and shown["open"]
        answer = {"status": "accepted", "reasons": "내년 상반기에 자전거 도로를 잇겠습니다."}
        assert client.post(f"{API}/proposals/{pid}/answer", json=answer, headers=key["staff1"]).status_code == 200
        after = client.get(f"{API}/proposals/{pid}/comments").json()
        assert (after["answer"]["status"], after["answer"]["reasons"]) == ("accepted", answer["reasons"])
        assert after["open"] is False


def test_the_debate_takes_words_only_between_its_opening_and_closing(db, db_url, tmp_path):
    app, key = _debating(db, db_url, tmp_path, ["author", "kim", "lee"])
    with TestClient(app) as client:
        pid = client.post(f"{API}/proposals", json=IDEA, headers=key["author"]).json()["id"]
        early = _say(client, key, "kim", pid, "아직 토론 전입니다")
        assert (early.status_code, early.json()["error"]["code"]) == (409, "not_open")
        client.put(f"{API}/proposals/{pid}/like", headers=key["kim"])
        assert _say(client, key, "kim", pid, "토론이 열렸습니다").status_code == 201
        shown = client.get(f"{API}/proposals/{pid}/comments").json()
        assert shown["opens_at"] and shown["closes_at"] > shown["opens_at"]
        # The closing date passes before the expiry job runs: one who spoke already is refused as well.
        with db.session() as s:
            s.execute(update(Proposal).where(Proposal.id == pid).values(closes_at=utcnow() - timedelta(seconds=1)))
        for who in ("kim", "lee"):
            late = _say(client, key, who, pid, "마감 뒤의 의견입니다")
            assert (late.status_code, late.json()["error"]["code"]) == (409, "not_open"), who
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Comment)) == 1
        assert s.get(Proposal, pid).participants == 1


def test_a_moderator_hides_one_comment_with_a_reason_and_the_public_reads_a_notice(db, db_url, tmp_path):
    from smartcity.core import audit

    app, key = _debating(db, db_url, tmp_path, ["author", "kim", "lee"])
    make_user(db, "mod", "admin")
    key["mod"] = {"X-API-Key": make_key(db, "mod")}
    with TestClient(app) as client:
        pid = _open_debate(client, key, "author", "kim")
        rude = _say(client, key, "kim", pid, "욕설이 담긴 댓글 <script>x</script>").json()["comment_id"]
        reply = _say(client, key, "lee", pid, "그런 말은 삼가 주세요", rude).json()["comment_id"]
        refused = client.post(f"{API}/comments/{rude}/hide", json={"reason": "욕설 포함"}, headers=key["lee"])
        assert refused.status_code == 403
        hid = client.post(f"{API}/comments/{rude}/hide", json={"reason": "욕설 포함"}, headers=key["mod"])
        assert hid.status_code == 200 and hid.json()["hidden"] is True, hid.text
        public = client.get(f"{API}/proposals/{pid}/comments", headers=key["lee"]).json()["comments"]
        shown = public[0]
        assert (shown["id"], shown["hidden"], shown["body"], shown["name"], shown["hidden_reason"]) == (
            rude,
            True,
            None,
            "",
            None,
        )
        assert [r["id"] for r in shown["replies"]] == [reply]  # the replies stay
        moderated = client.get(f"{API}/proposals/{pid}/comments", headers=key["mod"]).json()["comments"][0]
        assert (moderated["body"], moderated["hidden_reason"]) == ("욕설이 담긴 댓글 <script>x</script>", "욕설 포함")
        vote = client.put(f"{API}/comments/{rude}/vote", json={"value": 1}, headers=key["lee"])
        assert (vote.status_code, vote.json()["error"]["code"]) == (409, "hidden")
        answer = _say(client, key, "author", pid, "답글을 달아 봅니다", rude)
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "hidden")
        missing = client.post(f"{API}/comments/2147483648/hide", json={"reason": "없음"}, headers=key["mod"])
        assert missing.status_code == 404
        back = client.post(
            f"{API}/comments/{rude}/hide", json={"reason": "오해였음", "hidden": False}, headers=key["mod"]
        )
        assert back.json()["hidden"] is False
        again = client.get(f"{API}/proposals/{pid}/comments").json()["comments"][0]
        assert (again["hidden"], again["body"]) == (False, "욕설이 담긴 댓글 <script>x</script>")
    with db.session() as s:
        done = [(e.action, e.object_id, e.detail) for e in audit.entries(s, object_type="participation.comment")]
    assert ("hide", str(rude), {"reason": "욕설 포함", "proposal": pid}) in done
    assert any(a == "unhide" and d["reason"] == "오해였음" for a, _, d in done)
