"""Casting in groups (votes_casting.py) on both stores: casts that arrive while the writer is busy are stored
in one transaction; a group the store refuses answers every cast and keeps nothing of the refused one; two
processes casting for one person give one ballot; the bare route answers as the documented one does."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from smartcity.app import create_app
from smartcity.core import accounts
from smartcity.core.auth import identity_of_user
from smartcity.core.errors import SmartCityError
from smartcity.core.models import AuditEntry
from smartcity.core.writer import writer
from smartcity.participation import verification, votes_casting, votes_service
from smartcity.participation.voting_models import Ballot, Vote, VoterRoll
from tests.conftest import PASSWORD, eventually, make_key, make_settings, make_user, signin

API = "/api/participation"
QUESTION = {"text": "공원에 야간 조명을 달까요?", "kind": "single", "options": ["찬성", "반대"]}


def _city(db, db_url, tmp_path, people: dict[str, str]):
    """An app with census verification, staff1, and each of `people` (account -> resident id) verified; an
    open one-question vote. (app, identities by name, vote id)"""
    settings = make_settings(db_url, tmp_path, run_jobs=False, participation_vote_verifier="census")
    app = create_app(settings, db)
    make_user(db, "staff1", "staff", department="city-transport")
    for name in people:
        make_user(db, name, "citizen")
    residents = sorted(set(people.values()))
    verification.load_census(db, "resident_id,district,birth_year\n" + "".join(f"{r},11010,1970\n" for r in residents))
    with db.session() as s:
        who = {n: identity_of_user(accounts.get_user(s, n), "key") for n in ("staff1", *people)}
    for name, resident in people.items():
        verification.finish(db, who[name], {"resident_id": resident})
    now = datetime.now(UTC)
    new = votes_service.NewVote("공원 야간 조명 설치", [QUESTION], now - timedelta(minutes=1), now + timedelta(days=1))
    with db.session() as s:
        vote_id = votes_service.create(s, who["staff1"], new).id
    return app, who, vote_id


def _held(db) -> threading.Event:
    """Keep the store's writer busy until the returned event is set: casts meanwhile wait as one group."""
    release, started = threading.Event(), threading.Event()

    def hold(session):
        started.set()
        release.wait(30)

    writer(db).submit(hold)
    assert started.wait(10)
    return release


def _count(db, table, vote_id: int) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(table).where(table.vote_id == vote_id))


def test_casts_arriving_while_the_writer_is_busy_are_stored_as_one_group(db, db_url, tmp_path):
    people = {f"voter{i}": f"r-{i}" for i in range(12)} | {"twin": "r-0"}  # twin: voter0's second account
    app, who, vote_id = _city(db, db_url, tmp_path, people)
    before = writer(db).stats.groups
    release = _held(db)
    futures = [
        votes_casting.submit(db, votes_casting.Cast(vote_id, [[i % 2]], who[name])) for i, name in enumerate(people)
    ]
    again = votes_casting.submit(db, votes_casting.Cast(vote_id, [[0]], who["voter3"]))  # a double submit
    release.set()
    outcomes = {}
    for name, future in zip([*people, "voter3 again"], [*futures, again], strict=True):
        try:
            outcomes[name] = future.result(10).code
        except SmartCityError as exc:
            outcomes[name] = exc.code
    assert outcomes["twin"] == "same_person" and outcomes["voter3 again"] == "already_voted"
    assert all(len(outcomes[f"voter{i}"]) == 19 for i in range(12))  # a receipt code each
    # The holding job, then the casts' one job: one group for all fourteen.
    assert writer(db).stats.groups - before == 2
    assert (_count(db, Ballot, vote_id), _count(db, VoterRoll, vote_id)) == (12, 12)
    with db.session() as s:
        assert s.scalar(select(Vote.received).where(Vote.id == vote_id)) == 12
        actions = s.execute(
            select(AuditEntry.action, func.count())
            .where(AuditEntry.object_type == "participation.vote", AuditEntry.object_id == str(vote_id))
            .group_by(AuditEntry.action)
        ).all()
        if db.is_postgres:
            # The heap's order (what a copy of the table shows) is the random ids', not the casting order.
            heap = s.scalars(
                text("SELECT id FROM participation_ballots WHERE vote_id = :v ORDER BY ctid"), {"v": vote_id}
            )
            heap = list(heap)
            assert heap == sorted(heap)
    assert dict(actions) == {"create": 1, "cast": 12, "cast_refused": 2}
    with db.session() as s:
        assert all(votes_service.check_receipt(s, vote_id, outcomes[n])["counted"] for n in ("voter1", "voter7"))


_POISON = {
    "sqlite": [
        "CREATE TRIGGER poison BEFORE INSERT ON participation_ballots WHEN NEW.answers = '[[1]]' "
        "BEGIN SELECT RAISE(ABORT, 'poisoned ballot'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN IF NEW.answers = '[[1]]' THEN "
        "RAISE EXCEPTION 'poisoned ballot'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER poison BEFORE INSERT ON participation_ballots FOR EACH ROW EXECUTE FUNCTION poison()",
    ],
}


def test_a_group_the_store_refuses_answers_every_cast_and_keeps_nothing_of_the_refused_one(db, db_url, tmp_path):
    people = {f"voter{i}": f"r-{i}" for i in range(6)}
    app, who, vote_id = _city(db, db_url, tmp_path, people)
    with db.session() as s:  # the store itself refuses one answer: a real failure inside the group's job
        for statement in _POISON[db.engine.dialect.name]:
            s.execute(text(statement))
    release = _held(db)
    futures = {
        name: votes_casting.submit(db, votes_casting.Cast(vote_id, [[1 if name == "voter2" else 0]], who[name]))
        for name in people
    }
    release.set()
    stored = {}
    for name, future in futures.items():
        try:
            stored[name] = future.result(10).code
        except Exception as exc:  # the store's own error, as the platform answers it: 500
            stored[name] = exc
    assert "poisoned ballot" in str(stored.pop("voter2"))
    assert all(isinstance(code, str) for code in stored.values())
    with db.session() as s:
        rolled = set(s.scalars(select(VoterRoll.user_id).where(VoterRoll.vote_id == vote_id)))
        assert who["voter2"].user_id not in rolled and len(rolled) == 5
        assert s.scalar(select(Vote.received).where(Vote.id == vote_id)) == 5
    assert _count(db, Ballot, vote_id) == 5
    with db.session() as s:
        s.execute(text("DROP TRIGGER poison" + (" ON participation_ballots" if db.is_postgres else "")))
    # Nothing of the refused cast was kept: the person can cast now.
    assert votes_service.cast(db, who["voter2"], vote_id, [[1]]).code


_CASTER = """
import sys, threading, time
from pathlib import Path
from sqlalchemy import select
from smartcity.core import accounts
from smartcity.core.auth import identity_of_user
from smartcity.core.context import attach
from smartcity.core.db import Database
from smartcity.core.module import declared
from smartcity.settings import Settings
from smartcity.participation import votes_casting

url, vote_id, go, ready, names = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5:]
db = Database(url)
attach(db, Settings.from_env({"SMARTCITY_DATABASE_URL": url}), declared())
with db.session() as s:
    who = [identity_of_user(accounts.get_user(s, n), "key") for n in names]
ready.touch()
while not go.exists():
    time.sleep(0.005)
futures = [votes_casting.submit(db, votes_casting.Cast(vote_id, [[0]], w)) for w in who]
for name, f in zip(names, futures):
    try:
        print(name, "cast" if f.result(30).code else "")
    except Exception as exc:
        print(name, getattr(exc, "code", repr(exc)))
"""


def test_two_processes_casting_for_one_person_give_one_ballot(db, db_url, tmp_path):
    """Two server processes, each casting a group at the same moment; one person's two accounts are split
    between them. The roll's unique key lets exactly one of that person's casts in, on both stores."""
    people = {f"alpha{i}": f"r-a{i}" for i in range(5)} | {f"beta{i}": f"r-b{i}" for i in range(5)}
    people |= {"first": "r-same", "second": "r-same"}
    app, who, vote_id = _city(db, db_url, tmp_path, people)
    go = tmp_path / "go"
    groups = [["first", *(f"alpha{i}" for i in range(5))], ["second", *(f"beta{i}" for i in range(5))]]
    ready = [tmp_path / f"ready{i}" for i in range(len(groups))]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_CASTER), db_url, str(vote_id), str(go), str(r), *names],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r, names in zip(ready, groups, strict=True)
    ]
    # Both casters set up and waiting on the file, or one has died (its error is told below).
    eventually(lambda: all(r.exists() for r in ready) or any(p.poll() is not None for p in procs), timeout=120)
    go.touch()
    told = {}
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        told |= dict(line.split(" ", 1) for line in out.splitlines())
    assert sorted((told["first"], told["second"])) == ["cast", "same_person"], told
    assert all(told[n] == "cast" for n in people if n not in ("first", "second"))
    assert (_count(db, Ballot, vote_id), _count(db, VoterRoll, vote_id)) == (11, 11)


def test_the_bare_cast_route_answers_as_the_documented_one(db, db_url, tmp_path):
    people = {"kim": "r-kim", "lee": "r-lee", "park": "r-park"}
    app, who, vote_id = _city(db, db_url, tmp_path, people)
    path = f"{API}/votes/{vote_id}/ballots"
    kim = {"X-API-Key": make_key(db, "kim")}
    with TestClient(app) as client:
        spec = client.get("/api/openapi.json").json()
        assert "post" in spec["paths"]["/api/participation/votes/{vote_id}/ballots"]
        bad = client.post(path, content=b'{"answers": [[0]', headers=kim | {"Content-Type": "application/json"})
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid")
        wrong = client.post(path, json={"answers": [["zero"]]}, headers=kim)
        assert (wrong.status_code, wrong.json()["error"]["details"][0]["field"]) == (422, "body.answers.0.0")
        nobody = client.post(path, json={"answers": [[0]]}, headers={"X-API-Key": "sc_notakey000"})
        assert (nobody.status_code, nobody.json()["error"]["code"]) == (401, "invalid_api_key")
        anonymous = client.post(path, json={"answers": [[0]]})
        assert anonymous.status_code == 401
        machine = client.post(path, json={"answers": [[0]]}, headers={"X-API-Key": make_key(db)})
        assert machine.status_code == 403
        # A number sent as text is what the documented route's model takes: answered by it, cast all the same.
        made = client.post(path, json={"answers": [["1"]]}, headers=kim)
        assert made.status_code == 201, made.text
        assert set(made.json()) == {"vote_id", "receipt", "check_url"}
        again = client.post(path, json={"answers": [[0]]}, headers=kim)
        assert (again.status_code, again.json()["error"]["code"]) == (409, "already_voted")
        lee = client.post(path, json={"answers": [[0]]}, headers={"Authorization": "Bearer " + make_key(db, "lee")})
        assert lee.status_code == 201 and lee.json()["check_url"].endswith(lee.json()["receipt"])
        missing = client.post(f"{API}/votes/999999/ballots", json={"answers": [[0]]}, headers=kim)
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")

        signin(client, "park", PASSWORD)
        forged = client.post(path, json={"answers": [[0]]})  # a signed-in browser without the CSRF token
        assert (forged.status_code, forged.json()["error"]["code"]) == (403, "csrf_failed")
    with db.session() as s:
        reasons = s.scalars(
            select(AuditEntry.detail).where(AuditEntry.action == "cast_refused", AuditEntry.object_id == str(vote_id))
        ).all()
    assert [r["reason"] for r in reasons] == ["already_voted"]


@pytest.mark.parametrize("answers", [[[0, 1]], [[2]], [], [[0], [1]]])
def test_answers_the_vote_does_not_take_are_refused_and_audited(db, db_url, tmp_path, answers):
    app, who, vote_id = _city(db, db_url, tmp_path, {"kim": "r-kim"})
    key = {"X-API-Key": make_key(db, "kim")}
    with TestClient(app) as client:
        told = client.post(f"{API}/votes/{vote_id}/ballots", json={"answers": answers}, headers=key)
    assert (told.status_code, told.json()["error"]["code"]) == (422, "bad_answers")
    assert _count(db, VoterRoll, vote_id) == 0


def test_a_vote_id_past_64_bits_is_refused_without_breaking_up_its_group(db, db_url, tmp_path):
    people = {f"voter{i}": f"r-{i}" for i in range(3)}
    app, who, vote_id = _city(db, db_url, tmp_path, people)
    before = writer(db).stats.groups
    release = _held(db)
    huge = votes_casting.submit(db, votes_casting.Cast(2**70, [[0]], who["voter0"]))
    futures = [votes_casting.submit(db, votes_casting.Cast(vote_id, [[0]], who[n])) for n in people]
    release.set()
    with pytest.raises(OverflowError):
        huge.result(10)
    assert all(f.result(10).code for f in futures)
    assert writer(db).stats.groups - before == 2  # the holding job and the casts' one: no cast ran alone
    with TestClient(app) as client:
        told = client.post(
            f"{API}/votes/{2**70}/ballots", json={"answers": [[0]]}, headers={"X-API-Key": make_key(db, "voter1")}
        )
    assert (told.status_code, told.json()["error"]["code"]) == (422, "out_of_range")
