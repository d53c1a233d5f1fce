"""Participatory budgets (issue 15, item 4) on both stores, through the JSON API as a phone app calls it: a
budget split by district runs proposing → reviewing → selecting → voting → results, verified people vote
once (a second account of the same person is refused, so is a person of another district), winners are taken
in order of votes while each area's money lasts; the job moves a budget by its dates; the voter roll and the
ballot box cannot be joined."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from smartcity.app import create_app
from smartcity.core import accounts, audit
from smartcity.core.auth import identity_of_user
from smartcity.core.errors import Conflict
from smartcity.participation import budgets as B
from smartcity.participation.budgets_models import Budget
from tests.conftest import make_key, make_settings, make_user

API = "/api/participation/budgets"
HOME, OTHER = "11230", "11240"  # two districts of the Seoul profile


def _app(db, db_url, tmp_path, **rules):
    return create_app(
        make_settings(db_url, tmp_path, run_jobs=False, participation_vote_verifier="census", **rules), db
    )


def _census(client, residents: dict[str, str], keys: dict[str, dict]) -> None:
    """Load a residents register (resident id → district) and verify each person's accounts through the API."""
    from smartcity.participation import verification

    text = "resident_id,district,birth_year\n" + "".join(f"{r},{d},1980\n" for r, d in residents.items())
    assert verification.load_census(client.app.state.db, text).loaded == len(residents)


def _verify(client, key: dict, resident: str) -> None:
    done = client.post("/api/participation/verification/finish", json={"resident_id": resident}, headers=key)
    assert done.status_code == 200, done.text


def _budget(client, key, **extra) -> dict:
    now = datetime.now(UTC)
    body = {
        "title_ko": "2027 주민참여예산",
        "title_en": "Participatory budget 2027",
        "areas": {HOME: 100_000_000, OTHER: 50_000_000},
        "reviewing_at": (now + timedelta(days=10)).isoformat(),
        "selecting_at": (now + timedelta(days=20)).isoformat(),
        "voting_at": (now + timedelta(days=30)).isoformat(),
        "results_at": (now + timedelta(days=40)).isoformat(),
        "forward": 3,
    } | extra
    made = client.post(API, json=body, headers=key)
    assert made.status_code == 201, made.text
    return made.json()


def _project(client, key, budget_id, title, cost, area=HOME) -> int:
    body = {
        "title": title,
        "description": f"{title}: 주민 모두가 쓰는 시설을 고쳐 주세요. 오래되어 위험합니다.",
        "cost": cost,
    }
    made = client.post(f"{API}/{budget_id}/projects", json=body | {"area": area}, headers=key)
    assert made.status_code == 201, made.text
    return made.json()["id"]


def _move(client, key, budget_id, phase) -> dict:
    moved = client.post(f"{API}/{budget_id}/phase", json={"phase": phase}, headers=key)
    assert moved.status_code == 200, moved.text
    return moved.json()


def _error(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_winners_are_taken_in_order_of_votes_while_the_money_lasts():
    def p(pid, votes, cost):
        return SimpleNamespace(id=pid, votes=votes, cost=cost, estimated_cost=None)

    # 9 votes (60) fits; 7 votes (50) does not fit the 40 left and is skipped; 5 votes (30) fits; 10 are left.
    assert B.winners([p(1, 7, 50), p(2, 9, 60), p(3, 5, 30), p(4, 0, 5)], 100) == [2, 3]
    # A tie in votes: the cheaper first, then the older; the project without votes never wins.
    assert B.winners([p(5, 4, 30), p(6, 4, 20), p(7, 4, 20), p(8, 0, 1)], 45) == [6, 7]
    # The review's estimate is what a project costs.
    assert B.winners([SimpleNamespace(id=9, votes=1, cost=10, estimated_cost=200)], 100) == []


def test_a_budget_runs_through_its_phases_to_winners(db, db_url, tmp_path):
    app = _app(db, db_url, tmp_path, participation_budget_min_count=2)
    make_user(db, "staff1", "staff", department="city-transport")
    names = ("author", "kim", "kim2", "lee", "park", "choi", "stranger")
    for name in names:
        make_user(db, name, "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("staff1", *names)}
    with TestClient(app) as client:
        budget = _budget(client, key["staff1"])
        bid = budget["id"]
        assert budget["phase"] == "proposing" and budget["total"] == 150_000_000
        assert _error(client.post(API, json={"title_ko": "x"}, headers=key["author"]))[0] == 422
        refused = client.post(API, json={**_budget_body(), "areas": {HOME: 1}}, headers=key["author"])
        assert _error(refused) == (403, "forbidden")

        shade = _project(client, key["author"], bid, "어린이공원 그늘막", 40_000_000)
        lights = _project(client, key["author"], bid, "골목길 보안등 교체", 70_000_000)
        bench = _project(client, key["author"], bid, "버스정류장 의자", 30_000_000)
        tower = _project(client, key["author"], bid, "전망대 건립", 90_000_000)
        river = _project(client, key["author"], bid, "하천 산책로 조명", 20_000_000, area=OTHER)
        costly = {
            "title": "지하 주차장 건설",
            "description": "주차할 곳이 없어 지하 주차장이 필요합니다. 꼭 지어 주세요.",
            "area": HOME,
        }
        too_much = client.post(f"{API}/{bid}/projects", json=costly | {"cost": 100_000_001}, headers=key["kim"])
        assert _error(too_much) == (422, "too_costly")
        nowhere = client.post(f"{API}/{bid}/projects", json=costly | {"cost": 1, "area": "11250"}, headers=key["kim"])
        assert _error(nowhere) == (422, "unknown_area")
        early = client.put(f"{API}/{bid}/projects/{shade}/support", headers=key["kim"])
        assert _error(early) == (409, "wrong_phase")

        assert _error(client.post(f"{API}/{bid}/phase", json={"phase": "reviewing"}, headers=key["kim"]))[0] == 403
        _move(client, key["staff1"], bid, "reviewing")
        late = client.post(f"{API}/{bid}/projects", json=costly | {"cost": 1}, headers=key["kim"])
        assert _error(late) == (409, "wrong_phase")
        review = f"{API}/{bid}/projects/{{}}/review"
        no_reason = client.post(review.format(tower), json={"feasible": False, "reason": ""}, headers=key["staff1"])
        assert _error(no_reason) == (422, "invalid")
        assert _error(client.post(review.format(tower), json={"feasible": True}, headers=key["kim"]))[0] == 403
        unfit = {"feasible": False, "reason": "공원 부지가 아니어서 지을 수 없습니다."}
        assert client.post(review.format(tower), json=unfit, headers=key["staff1"]).json()["status"] == "unfeasible"
        estimate = {"feasible": True, "reason": "설계 결과 비용이 늘었습니다.", "estimated_cost": 60_000_000}
        assert client.post(review.format(shade), json=estimate, headers=key["staff1"]).json()["cost"] == 60_000_000
        for pid in (lights, bench, river):
            assert client.post(review.format(pid), json={"feasible": True}, headers=key["staff1"]).status_code == 200

        _move(client, key["staff1"], bid, "selecting")
        support = f"{API}/{bid}/projects/{{}}/support"
        assert _error(client.put(support.format(tower), headers=key["kim"])) == (409, "not_feasible")
        for _ in range(2):  # supporting twice is one support
            shown = client.put(support.format(shade), headers=key["kim"]).json()
        assert (shown["supports"], shown["supported"]) == (1, True)
        for who, pids in {"lee": (shade, lights), "park": (lights, bench, river), "choi": (shade,)}.items():
            for pid in pids:
                client.put(support.format(pid), headers=key[who])

        _move(client, key["staff1"], bid, "voting")
        listed = client.get(f"{API}/{bid}/projects", params={"area": HOME}, headers=key["kim"]).json()["projects"]
        status = {p["id"]: p["status"] for p in listed}
        assert status == {shade: "selected", lights: "selected", bench: "selected", tower: "unfeasible"}
        assert all(p["votes"] is None for p in listed)  # no counts before the results

        _census(client, {"r-kim": HOME, "r-lee": HOME, "r-park": HOME, "r-choi": OTHER}, key)
        ballot = f"{API}/{bid}/ballot"
        unverified = client.post(ballot, json={"area": HOME, "projects": [shade]}, headers=key["stranger"])
        assert _error(unverified) == (403, "not_verified")
        for who, resident in (("kim", "r-kim"), ("kim2", "r-kim"), ("lee", "r-lee"), ("park", "r-park")):
            _verify(client, key[who], resident)
        _verify(client, key["choi"], "r-choi")
        over = client.post(ballot, json={"area": HOME, "projects": [shade, lights]}, headers=key["kim"])
        assert _error(over) == (422, "over_budget")  # 60 + 70 million > 100 million
        stray = client.post(ballot, json={"area": HOME, "projects": [tower]}, headers=key["kim"])
        assert _error(stray) == (422, "not_in_vote")
        elsewhere = client.post(ballot, json={"area": HOME, "projects": [bench]}, headers=key["choi"])
        assert _error(elsewhere) == (403, "other_district")
        cast = client.post(ballot, json={"area": HOME, "projects": [lights, bench]}, headers=key["kim"])
        assert cast.status_code == 201, cast.text
        twin = client.post(ballot, json={"area": HOME, "projects": [shade]}, headers=key["kim2"])
        assert _error(twin) == (409, "already_voted")  # the same person's second account
        assert _error(client.post(ballot, json={"area": HOME, "projects": [shade]}, headers=key["kim"]))[0] == 409
        assert client.post(ballot, json={"area": HOME, "projects": [shade]}, headers=key["lee"]).status_code == 201
        assert client.post(ballot, json={"area": HOME, "projects": [lights]}, headers=key["park"]).status_code == 201
        assert client.post(ballot, json={"area": OTHER, "projects": [river]}, headers=key["choi"]).status_code == 201
        assert client.get(f"{API}/{bid}", headers=key["kim2"]).json()["voted_area"] == HOME
        assert _error(client.get(f"{API}/{bid}/results")) == (409, "not_yet")

        _move(client, key["staff1"], bid, "results")
        results = client.get(f"{API}/{bid}/results").json()
        home, other = ({a["area"]: a for a in results["areas"]}[k] for k in (HOME, OTHER))
        # lights 2 votes (70M) is taken; shade 1 vote (60M) no longer fits the 30M left; bench 1 vote (30M) fits.
        assert [(line["project_id"], line["votes"], line["winner"]) for line in home["lines"]] == [
            (lights, 2, True),
            (bench, 1, True),
            (shade, 1, False),
        ]
        assert (home["ballots"], home["spent"], home["suppressed"]) == (3, 100_000_000, False)
        # One ballot in the other district: below the minimum of 2, its counts are withheld, its winner shown.
        assert (other["ballots"], other["suppressed"], other["lines"][0]["votes"]) == (None, True, None)
        assert other["lines"][0]["winner"] is True
        exported = client.get(f"{API}/{bid}/results.csv")
        assert exported.headers["content-type"].startswith("text/csv")
        lines = list(csv.DictReader(io.StringIO(exported.text)))
        assert [(r["project_id"], r["votes"], r["winner"]) for r in lines] == [
            (str(lights), "2", "True"),
            (str(bench), "1", "True"),
            (str(shade), "1", "False"),
            (str(river), "", "True"),
        ]
        assert _error(client.post(f"{API}/{bid}/phase", json={"phase": "voting"}, headers=key["staff1"])) == (
            409,
            "phase_backwards",
        )
    with db.session() as s:
        said = {(e.action, e.object_type) for e in audit.entries(s) if e.object_type.startswith("participation.budget")}
        assert {
            ("create", "participation.budget"),
            ("move_phase", "participation.budget"),
            ("review_project", "participation.budget_project"),
            ("cast_budget_ballot", "participation.budget"),
        } <= said
        votes = [e.detail for e in audit.entries(s) if e.action == "cast_budget_ballot"]
        assert votes and all(set(d) == {"area"} for d in votes)  # where, never what
        refused = [e.detail["reason"] for e in audit.entries(s) if e.action == "refuse_budget_ballot"]
        assert sorted(refused) == sorted(
            ["not_verified", "over_budget", "not_in_vote", "other_district", "already_voted", "already_voted"]
        )


def _budget_body() -> dict:
    now = datetime.now(UTC)
    return {
        "title_ko": "시험 예산",
        "areas": {HOME: 1_000},
        **{f"{p}_at": (now + timedelta(days=i + 1)).isoformat() for i, p in enumerate(B.PHASES[1:])},
    }


def test_an_approval_ballot_takes_at_most_n_projects(db, db_url, tmp_path):
    app = _app(db, db_url, tmp_path)
    make_user(db, "staff1", "staff", department="city-transport")
    make_user(db, "voter", "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("staff1", "voter")}
    with TestClient(app) as client:
        bid = _budget(client, key["staff1"], areas={"city": 10_000}, ballot="approval", approvals=2)["id"]
        made = [_project(client, key["voter"], bid, f"도시 사업 {i}번", 9_000, area="city") for i in range(3)]
        _move(client, key["staff1"], bid, "reviewing")
        for pid in made:
            client.post(f"{API}/{bid}/projects/{pid}/review", json={"feasible": True}, headers=key["staff1"])
        _move(client, key["staff1"], bid, "selecting")
        for pid in made:
            client.put(f"{API}/{bid}/projects/{pid}/support", headers=key["voter"])
        _move(client, key["staff1"], bid, "voting")
        _census(client, {"r-1": HOME}, key)
        _verify(client, key["voter"], "r-1")
        three = client.post(f"{API}/{bid}/ballot", json={"area": "city", "projects": made}, headers=key["voter"])
        assert _error(three) == (422, "too_many")
        # Approval ignores the money: two projects of 9,000 each within a city's 10,000.
        two = client.post(f"{API}/{bid}/ballot", json={"area": "city", "projects": made[:2]}, headers=key["voter"])
        assert two.status_code == 201, two.text


def test_the_job_moves_a_budget_by_its_dates(db, db_url, tmp_path):
    create_app(make_settings(db_url, tmp_path, run_jobs=False), db)
    make_user(db, "staff1", "staff", department="city-transport")
    with db.session() as s:
        staff = identity_of_user(accounts.get_user(s, "staff1"), "key")
        now = datetime.now(UTC)
        starts = [now + timedelta(days=d) for d in (1, 2, 3, 4)]
        bid = B.create_budget(s, staff, B.NewBudget("날짜로 움직이는 예산", {"city": 1_000}, *starts)).id
    assert B.advance_due(db, now) == []
    assert B.advance_due(db, starts[1] + timedelta(minutes=1)) == [(bid, "selecting")]
    assert B.advance_due(db, starts[1] + timedelta(minutes=2)) == []
    assert B.advance_due(db, starts[3]) == [(bid, "results")]
    with db.session() as s:
        assert s.get(Budget, bid).phase == "results"
        moves = [
            (e.actor, e.detail["to"])
            for e in audit.entries(s, object_type="participation.budget")
            if e.action == "move_phase"
        ]
        assert moves and {a for a, _ in moves} == {"job:participation.budgets"}
        assert sorted(t for _, t in moves) == ["results", "selecting"]


def test_two_accounts_of_one_person_voting_at_once_count_once(db, db_url, tmp_path):
    app = _app(db, db_url, tmp_path)
    make_user(db, "staff1", "staff", department="city-transport")
    for name in ("twin_a", "twin_b"):
        make_user(db, name, "citizen")
    key = {n.removeprefix("twin_"): {"X-API-Key": make_key(db, n)} for n in ("staff1", "twin_a", "twin_b")}
    with TestClient(app) as client:
        bid = _budget(client, key["staff1"])["id"]
        pid = _project(client, key["a"], bid, "공원 화장실 개선", 1_000)
        for phase in ("reviewing", "selecting"):
            _move(client, key["staff1"], bid, phase)
            if phase == "reviewing":
                client.post(f"{API}/{bid}/projects/{pid}/review", json={"feasible": True}, headers=key["staff1"])
        client.put(f"{API}/{bid}/projects/{pid}/support", headers=key["a"])
        _move(client, key["staff1"], bid, "voting")
        _census(client, {"same": HOME}, key)
        _verify(client, key["a"], "same")
        _verify(client, key["b"], "same")
    with db.session() as s:
        people = [identity_of_user(accounts.get_user(s, n), "key") for n in ("twin_a", "twin_b")]
    gate, outcomes = threading.Barrier(2), []

    def vote(identity):
        gate.wait()
        try:
            outcomes.append(B.cast(db, identity, bid, HOME, [pid]))
        except Conflict as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=vote, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == sorted([HOME, "already_voted"])
    with db.session() as s:
        assert B.get_project(s, pid).votes == 1


@pytest.mark.parametrize("table", ["participation_budget_voters", "participation_budget_ballots"])
def test_the_roll_and_the_ballot_box_share_nothing_but_the_budget(db, table):
    columns = {c["name"] for c in inspect(db.engine).get_columns(table)}
    other = "participation_budget_ballots" if table == "participation_budget_voters" else "participation_budget_voters"
    shared = columns & {c["name"] for c in inspect(db.engine).get_columns(other)}
    assert shared == {"budget_id"}
    assert not columns & {"id", "created_at", "user_id"}  # no order, no time, no account to join on


def test_bad_budgets_are_refused_whole(db, db_url, tmp_path):
    app = _app(db, db_url, tmp_path)
    make_user(db, "staff1", "staff", department="city-transport")
    key = {"X-API-Key": make_key(db, "staff1")}
    now = datetime.now(UTC)
    with TestClient(app) as client:
        backwards = _budget_body() | {"voting_at": (now + timedelta(days=9)).isoformat()}
        said = client.post(API, json=backwards, headers=key).json()["error"]["message"]
        assert said == "the phases' start times must come after now and one after another"
        both = _budget_body() | {"areas": {"city": 5, HOME: 5}}
        said = client.post(API, json=both, headers=key).json()["error"]["message"]
        assert said == "a budget is either city-wide or split by district, not both"
        unknown = _budget_body() | {"areas": {"99999": 5}}
        assert _error(client.post(API, json=unknown, headers=key)) == (422, "unknown_district")
        approval = _budget_body() | {"ballot": "approval"}
        said = client.post(API, json=approval, headers=key).json()["error"]["message"]
        assert said.startswith("an approval ballot needs how many projects")
        assert client.post(API, json=_budget_body() | {"areas": {HOME: 0}}, headers=key).status_code == 422
        assert client.get(API).json() == {"budgets": []}  # nothing half-stored
    with db.session() as s:
        assert s.scalars(select(Budget)).all() == []


def test_the_korean_budget_page_escapes_texts_and_asks_an_unverified_citizen_to_verify(db, db_url, tmp_path):
    from tests.conftest import signin

    app = _app(db, db_url, tmp_path)
    make_user(db, "staff1", "staff", department="city-transport")
    for name in ("verified", "unverified"):
        make_user(db, name, "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("staff1", "verified", "unverified")}
    with TestClient(app) as client:
        bid = _budget(client, key["staff1"])["id"]
        pid = _project(client, key["verified"], bid, "<script>alert(1)</script> 놀이터", 1_000)
        _move(client, key["staff1"], bid, "reviewing")
        client.post(f"{API}/{bid}/projects/{pid}/review", json={"feasible": True}, headers=key["staff1"])
        _move(client, key["staff1"], bid, "selecting")
        client.put(f"{API}/{bid}/projects/{pid}/support", headers=key["verified"])
        _move(client, key["staff1"], bid, "voting")
        _census(client, {"r-v": HOME}, key)
        _verify(client, key["verified"], "r-v")
    pages = {}
    for name in ("verified", "unverified"):
        with TestClient(app) as browser:
            browser.cookies.set("lang", "ko")
            signin(browser, name)
            pages[name] = browser.get(f"/participation/budgets/{bid}", params={"area": HOME}).text
    for page in pages.values():
        assert "&lt;script&gt;alert(1)&lt;/script&gt; 놀이터" in page and "<script>alert(1)" not in page
        assert "투표" in page and "100,000,000원" in page
    assert 'id="ballot"' in pages["verified"] and 'class="verify-first"' not in pages["verified"]
    assert 'id="ballot"' not in pages["unverified"] and 'class="verify-first"' in pages["unverified"]


def test_followers_hear_of_each_phase_in_their_language(db, db_url, tmp_path):
    from smartcity.core.notify import Notification

    app = _app(db, db_url, tmp_path)
    make_user(db, "staff1", "staff", department="city-transport")
    make_user(db, "fan", "citizen", email="fan@example.kr", language="ko")
    make_user(db, "author", "citizen", email="author@example.org", language="en")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("staff1", "fan", "author")}
    with TestClient(app) as client:
        bid = _budget(client, key["staff1"])["id"]
        followed = client.put(f"/api/participation/follows/budget/{bid}", headers=key["fan"])
        assert followed.status_code == 200, followed.text
        _project(client, key["author"], bid, "마을 도서관 책장", 1_000)  # its author follows the budget
        _move(client, key["staff1"], bid, "reviewing")
    with db.session() as s:
        sent = s.execute(
            select(Notification.to, Notification.body).where(
                Notification.ref == f"budget:{bid}", Notification.channel == "email"
            )
        ).all()
    assert sorted(sent) == [
        (
            "author@example.org",
            "The participatory budget “Participatory budget 2027” is now in a new phase: Reviewing projects.",
        ),
        ("fan@example.kr", "주민참여예산 “2027 주민참여예산”의 단계가 바뀌었습니다. 지금은 사업 검토 단계입니다."),
    ]
