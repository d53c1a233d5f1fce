"""Votes (issue 15, item 3) on both stores, through the JSON API as the phone app calls it: a targeted vote,
verification by SMS code through the outbox, one ballot per person across accounts, refusals audited, results
at the close with the small cells hidden, receipts and the hash chain — and two processes casting at once."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from smartcity.app import create_app
from smartcity.core.db import Database, utcnow
from smartcity.core.errors import SmartCityError
from smartcity.core.models import AuditEntry
from smartcity.core.notify import Notification
from smartcity.participation import votes_chain, votes_service
from smartcity.participation.verification import phone_number
from smartcity.participation.voting_models import Ballot, Vote, VoterRoll
from tests.conftest import make_key, make_settings, make_user

API = "/api/participation"
JONGNO, JUNG = "11010", "11020"


def _app(db, tmp_path, db_url, **rules):
    return create_app(make_settings(db_url, tmp_path, run_jobs=False, **rules), db)


def _vote(**extra) -> dict:
    now = utcnow()
    body = {
        "title": "종로구 차 없는 거리 주말 운영",
        "description": "종로 일대를 주말마다 차 없는 거리로 운영할지 묻습니다.",
        "questions": [
            {"text": "주말 차 없는 거리에 찬성하십니까?", "kind": "single", "options": ["찬성", "반대"]},
            {
                "text": "필요한 시설을 고르세요",
                "kind": "multiple",
                "options": ["벤치", "그늘막", "화장실"],
                "max_choices": 2,
            },
            {"text": "운영 시간 우선순위", "kind": "ranking", "options": ["오전", "오후", "저녁"], "max_choices": 3},
        ],
        "opens_at": (now - timedelta(minutes=1)).isoformat(),
        "closes_at": (now + timedelta(days=7)).isoformat(),
        "target": {"districts": [JONGNO]},
    }
    return body | extra


BALLOT = {"answers": [[0], [2, 0], [1, 0, 2]]}


def _code(db, phone: str) -> str:
    """The code as the SMS gateway would deliver it: the last message queued to that phone."""
    with db.session() as s:
        body = s.scalar(
            select(Notification.body)
            .where(Notification.channel == "sms", Notification.to == phone)
            .order_by(Notification.id.desc())
        )
    return re.search(r"(?<!\d)(\d{6})(?!\d)", body).group(1)


def _verify(client, db, headers, phone, district=JONGNO, birth_year=None):
    sent = client.post(
        f"{API}/verification/start",
        json={"phone": phone, "birth_year": birth_year or utcnow().year - 45, "district_code": district},
        headers=headers,
    )
    assert sent.status_code == 200, sent.text
    done = client.post(f"{API}/verification/finish", json={"code": _code(db, phone_number(phone))}, headers=headers)
    assert done.status_code == 200, done.text
    return done.json()


def _refusals(db) -> list[str]:
    with db.session() as s:
        rows = s.scalars(
            select(AuditEntry.detail).where(AuditEntry.action == "cast_refused").order_by(AuditEntry.id)
        ).all()
    return [d["reason"] for d in rows]


def _close(db, vote_id: int) -> None:
    with db.session() as s:
        s.execute(update(Vote).where(Vote.id == vote_id).values(closes_at=utcnow() - timedelta(seconds=1)))


def test_a_targeted_vote_from_verification_to_the_published_results(db, db_url, tmp_path):
    app = _app(db, tmp_path, db_url, participation_vote_batch=2, participation_vote_min_count=2)
    make_user(db, "staff1", "staff", department="city-transport")
    names = ("kim", "kim2", "lee", "park", "choi", "nobody")
    for name in names:
        make_user(db, name, "citizen", language="ko")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("staff1", *names)}
    with TestClient(app) as client:
        refused = client.post(f"{API}/votes", json=_vote(), headers=key["kim"])
        assert refused.status_code == 403
        made = client.post(f"{API}/votes", json=_vote(), headers=key["staff1"])
        assert made.status_code == 201, made.text
        vid = made.json()["id"]
        assert made.json()["status"] == "open"

        _verify(client, db, key["kim"], "010-1111-2222")
        shown = client.get(f"{API}/votes/{vid}", headers=key["kim"]).json()
        assert (shown["verified"], shown["eligible"], shown["voted"]) == (True, True, False)
        cast = client.post(f"{API}/votes/{vid}/ballots", json=BALLOT, headers=key["kim"])
        assert cast.status_code == 201, cast.text
        receipt = cast.json()["receipt"]
        again = client.post(f"{API}/votes/{vid}/ballots", json=BALLOT, headers=key["kim"])
        assert (again.status_code, again.json()["error"]["code"]) == (409, "already_voted")

        # The same person's second account: the same phone gives the same identity, and the roll refuses it.
        _verify(client, db, key["kim2"], "+82 10 1111 2222")
        second = client.post(f"{API}/votes/{vid}/ballots", json=BALLOT, headers=key["kim2"])
        assert (second.status_code, second.json()["error"]["code"]) == (409, "same_person")

        _verify(client, db, key["lee"], "010-3333-4444", district=JUNG)
        outside = client.post(f"{API}/votes/{vid}/ballots", json=BALLOT, headers=key["lee"])
        assert (outside.status_code, outside.json()["error"]["code"]) == (403, "outside_district")
        assert client.get(f"{API}/votes/{vid}", headers=key["lee"]).json()["refusal"] == "outside_district"

        unverified = client.post(f"{API}/votes/{vid}/ballots", json=BALLOT, headers=key["nobody"])
        assert (unverified.status_code, unverified.json()["error"]["code"]) == (403, "not_verified")

        _verify(client, db, key["park"], "010-5555-6666", birth_year=utcnow().year - 76)
        bad = client.post(f"{API}/votes/{vid}/ballots", json={"answers": [[0, 1], [2], [1, 0, 2]]}, headers=key["park"])
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "bad_answers")
        short_rank = {"answers": [[1], [2], [1, 0]]}
        bad = client.post(f"{API}/votes/{vid}/ballots", json=short_rank, headers=key["park"])
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "bad_answers")
        park = client.post(f"{API}/votes/{vid}/ballots", json={"answers": [[1], [2], [2, 1, 0]]}, headers=key["park"])
        assert park.status_code == 201, park.text
        _verify(client, db, key["choi"], "010-7777-8888", birth_year=utcnow().year - 44)
        assert client.post(f"{API}/votes/{vid}/ballots", json=BALLOT, headers=key["choi"]).status_code == 201

        hidden = client.get(f"{API}/votes/{vid}/results")
        assert (hidden.status_code, hidden.json()["error"]["code"]) == (409, "results_hidden")
        checked = client.get(f"{API}/votes/{vid}/receipts/{receipt.lower()}").json()
        assert checked["counted"] is True
        assert client.get(f"{API}/votes/{vid}/receipts/0000-0000-0000-0000").json()["counted"] is False

        _close(db, vid)
        late = client.post(f"{API}/votes/{vid}/ballots", json=BALLOT, headers=key["lee"])
        assert (late.status_code, late.json()["error"]["code"]) == (409, "closed")
        results = client.get(f"{API}/votes/{vid}/results")
        assert results.status_code == 200, results.text
        r = results.json()
        assert (r["final"], r["total"]) == (True, 3)
        first, facilities, hours = r["questions"]
        assert [o["count"] for o in first["options"]] == [2, 1]
        assert [o["count"] for o in facilities["options"]] == [2, 0, 3]
        # Ranking: first preferences and Borda points (3 for first, 2, 1).
        assert [o["count"] for o in hours["options"]] == [0, 2, 1]
        assert [o["points"] for o in hours["options"]] == [2 + 2 + 1, 3 + 3 + 2, 1 + 1 + 3]
        # The 40s band (two voters) shows; park's 70s band (one voter) is below the minimum and hidden.
        assert first["options"][0]["age_bands"][3] == 2 and first["options"][1]["age_bands"][6] is None
        # Jongno's 1 is hidden, and so is its 2: beside the shown turnout of 3 it would give the 1 away.
        assert first["options"][0]["districts"] == {JONGNO: None} and first["options"][1]["districts"] == {JONGNO: None}
        assert r["turnout"]["districts"] == {JONGNO: 3}

        # Closing sealed the last, odd ballot: the receipt is in the chain, and the whole chain holds.
        checked = client.get(f"{API}/votes/{vid}/receipts/{receipt}").json()
        assert checked["sealed"] is True and checked["position"] in (1, 2, 3)
        chain = client.get(f"{API}/votes/{vid}/chain").json()
        assert (chain["ok"], chain["ballots"], chain["waiting"]) == (True, 3, 0)

    assert _refusals(db) == [
        "already_voted",
        "same_person",
        "outside_district",
        "not_verified",
        "bad_answers",
        "bad_answers",
        "closed",
    ]
    with db.session() as s:
        # The ballot box keeps no account: its columns are the answers and the coarse breakdown only.
        assert {c.name for c in Ballot.__table__.columns} == {
            "id",
            "vote_id",
            "answers",
            "district_code",
            "age_band",
            "receipt_hash",
            "position",
            "chain_hash",
        }
        assert s.scalar(select(func.count()).select_from(VoterRoll).where(VoterRoll.vote_id == vid)) == 3


def test_a_changed_ballot_breaks_the_chain_where_it_was_changed(db, db_url, tmp_path):
    app = _app(db, tmp_path, db_url, participation_vote_batch=1)
    make_user(db, "staff1", "staff", department="city-transport")
    for name in ("ann", "bob", "cho"):
        make_user(db, name, "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("staff1", "ann", "bob", "cho")}
    with TestClient(app) as client:
        vid = client.post(f"{API}/votes", json=_vote(target={}), headers=key["staff1"]).json()["id"]
        for i, name in enumerate(("ann", "bob", "cho")):
            _verify(client, db, key[name], f"010-2000-000{i}")
            assert client.post(f"{API}/votes/{vid}/ballots", json=BALLOT, headers=key[name]).status_code == 201
        assert client.get(f"{API}/votes/{vid}/chain").json()["ok"] is True
        with db.session() as s:
            s.execute(
                update(Ballot).where(Ballot.vote_id == vid, Ballot.position == 2).values(answers="[[1],[2,0],[1,0,2]]")
            )
        broken = client.get(f"{API}/votes/{vid}/chain").json()
        assert (broken["ok"], broken["broken_at"]) == (False, 2)
        with db.session() as s:  # a ballot removed: the chain is short of the head the vote keeps
            s.execute(update(Ballot).where(Ballot.position == 2).values(answers="[[0],[2,0],[1,0,2]]"))
            s.execute(Ballot.__table__.delete().where(Ballot.position == 3))
        gone = client.get(f"{API}/votes/{vid}/chain").json()
        assert gone["ok"] is False


def test_ballots_join_the_chain_in_shuffled_batches(db, db_url, tmp_path):
    app = _app(db, tmp_path, db_url, participation_vote_batch=4)
    make_user(db, "staff1", "staff", department="city-transport")
    names = [f"voter{i}" for i in range(6)]
    for name in names:
        make_user(db, name, "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("staff1", *names)}
    with TestClient(app) as client:
        vid = client.post(f"{API}/votes", json=_vote(target={}), headers=key["staff1"]).json()["id"]
        receipts = []
        for i, name in enumerate(names):
            _verify(client, db, key[name], f"010-3000-000{i}")
            receipts.append(client.post(f"{API}/votes/{vid}/ballots", json=BALLOT, headers=key[name]).json()["receipt"])
            sealed = [client.get(f"{API}/votes/{vid}/receipts/{r}").json()["sealed"] for r in receipts]
            # Nothing is in the chain until four are waiting; then those four together.
            assert sealed == [i >= 3 and n < 4 for n in range(i + 1)]
    with db.session() as s:
        rows = s.execute(select(Ballot.id, Ballot.position).where(Ballot.vote_id == vid, Ballot.position.is_not(None)))
        by_position = [bid for bid, _ in sorted(rows, key=lambda r: r[1])]
    assert by_position == sorted(by_position)  # the batch's order is its random ids', not the casting order


def test_a_vote_near_a_place_and_for_age_bands(db, db_url, tmp_path):
    app = _app(db, tmp_path, db_url)
    make_user(db, "staff1", "staff", department="city-transport")
    for name in ("near", "far", "young", "nopoint"):
        make_user(db, name, "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("staff1", "near", "far", "young", "nopoint")}
    city_hall = {"lat": 37.5665, "lon": 126.978}
    target = {"point": city_hall | {"radius_m": 2000}, "age_bands": [2, 3, 4]}
    with TestClient(app) as client:
        vid = client.post(f"{API}/votes", json=_vote(target=target), headers=key["staff1"]).json()["id"]

        def verify_at(name, phone, lat, lon, year):
            body = {"phone": phone, "birth_year": year, "lat": lat, "lon": lon}
            assert client.post(f"{API}/verification/start", json=body, headers=key[name]).status_code == 200
            done = client.post(f"{API}/verification/finish", json={"code": _code(db, phone)}, headers=key[name])
            assert done.status_code == 200, done.text

        verify_at("near", "01040000001", 37.5700, 126.9820, year=utcnow().year - 45)
        verify_at("far", "01040000002", 37.5172, 127.0473, year=utcnow().year - 45)  # Gangnam, about 8 km away
        verify_at("young", "01040000003", 37.5700, 126.9820, year=utcnow().year - 15)
        _verify(client, db, key["nopoint"], "010-4000-0004")
        told = {n: client.post(f"{API}/votes/{vid}/ballots", json=BALLOT, headers=key[n]) for n in key if n != "staff1"}
        assert told["near"].status_code == 201
        assert {n: r.json()["error"]["code"] for n, r in told.items() if n != "near"} == {
            "far": "too_far",
            "young": "outside_age",
            "nopoint": "no_home",
        }


def test_staff_set_up_votes_within_the_rules(db, db_url, tmp_path):
    app = _app(db, tmp_path, db_url)
    make_user(db, "staff1", "staff", department="city-transport")
    headers = {"X-API-Key": make_key(db, "staff1")}
    with TestClient(app) as client:
        now = utcnow()
        cases = {
            "unknown_district": _vote(target={"districts": ["99999"]}),
            "bad_times": _vote(closes_at=(now - timedelta(days=1)).isoformat()),
            "outside_city": _vote(target={"point": {"lat": 35.1, "lon": 129.0, "radius_m": 500}}),
            "invalid": _vote(questions=[{"text": "하나뿐", "kind": "single", "options": ["예"]}]),
        }
        for code, body in cases.items():
            answer = client.post(f"{API}/votes", json=body, headers=headers)
            assert (answer.status_code, answer.json()["error"]["code"]) == (422, code), answer.text
        later = _vote(opens_at=(now + timedelta(days=1)).isoformat(), closes_at=(now + timedelta(days=2)).isoformat())
        vid = client.post(f"{API}/votes", json=later, headers=headers).json()["id"]
        changed = client.put(
            f"{API}/votes/{vid}", json=later | {"title": "종로구 차 없는 거리 운영 (수정)"}, headers=headers
        )
        assert (changed.status_code, changed.json()["title"], changed.json()["status"]) == (
            200,
            "종로구 차 없는 거리 운영 (수정)",
            "upcoming",
        )
        opened = client.post(f"{API}/votes", json=_vote(), headers=headers).json()["id"]
        refused = client.put(f"{API}/votes/{opened}", json=_vote(), headers=headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, "already_open")


@pytest.mark.postgres
def test_two_processes_casting_for_one_person_give_one_ballot(postgres_url, tmp_path):
    """Two accounts of one verified person cast at the same instant through two engines (as two server
    processes would): the roll's unique key lets exactly one ballot in."""
    db = Database(postgres_url)
    app = _app(db, tmp_path, postgres_url)
    make_user(db, "staff1", "staff", department="city-transport")
    make_user(db, "one", "citizen")
    make_user(db, "two", "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("staff1", "one", "two")}
    with TestClient(app) as client:
        vid = client.post(f"{API}/votes", json=_vote(target={}), headers=key["staff1"]).json()["id"]
        _verify(client, db, key["one"], "010-9000-0001")
        _verify(client, db, key["two"], "010-9000-0001")
        identities = {}
        for name in ("one", "two"):
            identities[name] = client.get(f"{API}/votes/{vid}", headers=key[name]).json()
    from smartcity.core.auth import Identity
    from smartcity.core.context import attach
    from smartcity.core.module import declared

    with db.session() as s:
        from smartcity.core.models import User

        ids = dict(s.execute(select(User.username, User.id).where(User.username.in_(("one", "two")))).all())
    engines = [Database(postgres_url) for _ in range(2)]
    for e in engines:
        attach(e, app.state.context.settings, declared())
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def cast(engine, name):
        who = Identity(user_id=ids[name], username=name, role="citizen", via="key")
        start.wait()
        try:
            votes_service.cast(engine, who, vid, BALLOT["answers"])
            outcomes.append("cast")
        except SmartCityError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=cast, args=(e, n)) for e, n in zip(engines, ("one", "two"), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["cast", "same_person"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Ballot).where(Ballot.vote_id == vid)) == 1
        assert s.scalar(select(Vote.received).where(Vote.id == vid)) == 1
    for e in (*engines, db):
        e.dispose()


def test_the_demo_has_an_open_vote_the_demo_citizen_can_cast_and_a_closed_one_with_results(db, demo_lines, client):
    from smartcity.core.city import load_profile
    from smartcity.core.demo import load_demo

    lines = demo_lines
    assert any(line.startswith("demo votes: one open") for line in lines), lines
    assert any(line == "demo votes: already there" for line in load_demo(db, load_profile("seoul")))
    votes = {v["status"]: v for v in client.get(f"{API}/votes").json()["votes"]}
    assert set(votes) == {"open", "closed"}
    citizen = {"X-API-Key": make_key(db, "citizen")}
    mine = client.get(f"{API}/votes/{votes['open']['id']}", headers=citizen).json()
    assert (mine["verified"], mine["eligible"]) == (True, True)
    cast = client.post(f"{API}/votes/{mine['id']}/ballots", json={"answers": [[1], [2, 0, 1]]}, headers=citizen)
    assert cast.status_code == 201, cast.text
    results = client.get(f"{API}/votes/{votes['closed']['id']}/results").json()
    assert results["final"] and results["total"] == sum(o["count"] for o in results["questions"][0]["options"]) > 0
    assert client.get(f"{API}/votes/{votes['closed']['id']}/chain").json()["ok"] is True


def test_no_hidden_cell_can_be_worked_out_by_subtraction():
    """Every cell below the minimum is hidden, and no row (a district's turnout and its options) nor column
    (an option across districts, or the turnout) is left with exactly one hidden cell beside published totals."""
    import random

    rng = random.Random(7)
    for _ in range(300):
        rows, options = rng.randint(1, 6), rng.randint(2, 4)
        table = [[rng.choice([0, 1, 3, 8, 12, 40, 90]) for _ in range(options)] for _ in range(rows)]
        turnout = [sum(row) for row in table]
        hidden_t, (hidden,) = votes_service.suppress(turnout, [table], 10)
        for r in range(rows):
            assert hidden_t[r] or turnout[r] >= 10
            assert all(hidden[r][o] for o in range(options) if table[r][o] < 10)
            assert sum(hidden[r]) + hidden_t[r] != 1
        for o in range(options):
            assert sum(hidden[r][o] for r in range(rows)) != 1 or rows == 1
        assert sum(hidden_t) != 1 or rows == 1
    hidden_t, (hidden,) = votes_service.suppress([50, 30, 4], [[[45, 5], [20, 10], [3, 1]]], 10)
    # District 1 alone would show 5 = 50 − 45; then district 3's 4 = 84 − 50 − 30, and so on.
    assert (hidden_t, hidden) == ([False, True, True], [[True, True], [False, True], [True, True]])


def test_the_cli_verifies_a_chain_and_says_where_it_breaks(db, db_url, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from smartcity.cli import main
    from smartcity.settings import get_settings

    app = _app(db, tmp_path, db_url, participation_vote_batch=1)
    make_user(db, "staff1", "staff", department="city-transport")
    for name in ("ann", "bob"):
        make_user(db, name, "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("staff1", "ann", "bob")}
    with TestClient(app) as client:
        vid = client.post(f"{API}/votes", json=_vote(target={}), headers=key["staff1"]).json()["id"]
        for i, name in enumerate(("ann", "bob")):
            _verify(client, db, key[name], f"010-5000-000{i}")
            assert client.post(f"{API}/votes/{vid}/ballots", json=BALLOT, headers=key[name]).status_code == 201
    monkeypatch.setenv("SMARTCITY_DATABASE_URL", db_url)
    monkeypatch.setenv("SMARTCITY_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    try:
        intact = CliRunner().invoke(main, ["participation", "verify-chain", str(vid)])
        assert intact.exit_code == 0 and f"vote {vid}: chain intact, 2 ballots" in intact.output, intact.output
        with db.session() as s:
            s.execute(update(Ballot).where(Ballot.vote_id == vid, Ballot.position == 1).values(age_band=7))
        broken = CliRunner().invoke(main, ["participation", "verify-chain", str(vid)])
        assert broken.exit_code == 1 and "chain BROKEN at ballot 1 of 2" in broken.output, broken.output
        missing = CliRunner().invoke(main, ["participation", "verify-chain", "999"])
        assert missing.exit_code == 2 and "no vote 999" in missing.output
    finally:
        get_settings.cache_clear()


def test_the_close_job_seals_and_tallies_each_closed_vote_once(db, db_url, tmp_path):
    app = _app(db, tmp_path, db_url, participation_vote_batch=10)
    make_user(db, "staff1", "staff", department="city-transport")
    make_user(db, "ann", "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("staff1", "ann")}
    with TestClient(app) as client:
        vid = client.post(f"{API}/votes", json=_vote(target={}), headers=key["staff1"]).json()["id"]
        later = client.post(f"{API}/votes", json=_vote(target={}), headers=key["staff1"]).json()["id"]
        _verify(client, db, key["ann"], "010-6000-0001")
        receipt = client.post(f"{API}/votes/{vid}/ballots", json=BALLOT, headers=key["ann"]).json()["receipt"]
        assert client.get(f"{API}/votes/{vid}/receipts/{receipt}").json()["sealed"] is False
        assert votes_service.close_due(db) == []
        _close(db, vid)
        assert votes_service.close_due(db) == [vid] and votes_service.close_due(db) == []
        assert client.get(f"{API}/votes/{vid}/receipts/{receipt}").json()["sealed"] is True
        assert client.get(f"{API}/votes/{vid}/results").json()["total"] == 1
        assert client.get(f"{API}/votes/{later}/results").json()["error"]["code"] == "results_hidden"


def test_verify_chain_reads_its_links_from_the_chain_index_alone(db):
    # The ballots are clustered by their random ids: read in chain order through an index that lacks a link's
    # columns, every ballot is a seek of its own (SQLite's plan says "USING INDEX", not "COVERING INDEX").
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plan; PostgreSQL chooses by its statistics")
    with db.engine.connect() as conn:
        plan = " ".join(
            str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + votes_chain.CHAIN_SQL, (1,))
        )
    assert "COVERING INDEX ix_participation_ballots_chain" in plan, plan
