"""Participation's results as open data (issue 15, item 6), on both stores: the module's datasets are published
through core's dataset registration (read back with CKAN's API, as any client reads them); their rows hold
counts, never a person — no account, name, voter key or ballot token — and an area with fewer ballots than
the minimum stays withheld in every publication."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from smartcity.app import create_app
from smartcity.core import accounts
from smartcity.core.auth import identity_of_user
from smartcity.core.module import datasets
from smartcity.opendata import feeds
from smartcity.participation import budgets as B
from smartcity.participation import module, service, verification
from smartcity.participation.budgets_models import BudgetBallot, BudgetVoter
from tests.conftest import make_settings, make_user

HOME, OTHER = "11230", "11240"
PERSONAL = {"author_id", "user_id", "voter", "ballot", "username", "email", "phone", "identity_hash", "resident_id"}


def _rows(client, name: str) -> list[dict]:
    package = client.get("/api/3/action/package_show", params={"id": name}).json()
    assert package["success"], package
    rid = package["result"]["resources"][0]["id"]
    found = client.get("/api/3/action/datastore_search", params={"resource_id": rid, "limit": 1000}).json()
    return found["result"]["records"]


def _publish(db) -> None:
    for dataset in datasets([module]):
        feeds.publish_feed(db, dataset, list(db.context.modules))


def test_published_results_hold_no_person_and_small_areas_stay_withheld(db, db_url, tmp_path):
    settings = make_settings(
        db_url, tmp_path, run_jobs=False, participation_vote_verifier="census", participation_budget_min_count=3
    )
    app = create_app(settings, db)
    make_user(db, "staff1", "staff", department="city-transport")
    voters = {"kim_vote": HOME, "lee_vote": HOME, "park_vote": HOME, "choi_vote": OTHER}
    for name in voters:
        make_user(db, name, "citizen", email=f"{name}@example.kr", display_name=f"{name} 시민")
    verification.load_census(
        db, "resident_id,district,birth_year\n" + "".join(f"r-{n},{d},1970\n" for n, d in voters.items())
    )
    with db.session() as s:
        who = {n: identity_of_user(accounts.get_user(s, n), "key") for n in ("staff1", *voters)}
    for name in voters:
        verification.finish(db, who[name], {"resident_id": f"r-{name}"})
    _publish(db)  # before any result: empty datasets publish (no key column to miss)
    now = datetime.now(UTC)
    with db.session() as s:
        starts = [now + timedelta(days=d) for d in (1, 2, 3, 4)]
        new = B.NewBudget("공개 데이터 예산", {HOME: 1_000_000, OTHER: 1_000_000}, *starts)
        bid = B.create_budget(s, who["staff1"], new).id
        text = "주민이 함께 쓰는 공간을 고쳐 주세요. 오래되어 위험합니다."
        park = B.propose(s, who["kim_vote"], bid, B.NewProject("공원 의자 교체", text, 500_000, HOME)).id
        path = B.propose(s, who["choi_vote"], bid, B.NewProject("하천길 조명 설치", text, 800_000, OTHER)).id
        B.move(s, who["staff1"], bid, "reviewing")
        for pid in (park, path):
            B.review(s, who["staff1"], pid, True, "", None)
        B.move(s, who["staff1"], bid, "selecting")
    for pid in (park, path):
        B.support(db, who["kim_vote"], pid)
    with db.session() as s:
        B.move(s, who["staff1"], bid, "voting")
    for name, area in voters.items():
        B.cast(db, who[name], bid, area, [park if area == HOME else path])
    with db.session() as s:
        B.move(s, who["staff1"], bid, "results")
        service.create(s, who["kim_vote"], service.NewProposal("버스 정류장 그늘막 설치", text * 2, "transport", None))
        keys = set(s.scalars(select(BudgetVoter.voter))) | set(s.scalars(select(BudgetBallot.ballot)))
    assert len(keys) == 8  # four voters' keys, four ballots' tokens
    secrets = keys | set(voters) | {f"{n}@example.kr" for n in voters} | {f"{n} 시민" for n in voters}
    secrets |= {f"r-{n}" for n in voters}

    with TestClient(app) as client:
        for _ in range(2):  # published again, nothing comes back
            _publish(db)
            results = _rows(client, "participation-budget-results")
            turnout = _rows(client, "participation-budget-turnout")
            counts = _rows(client, "participation-proposal-counts")
            for rows in (results, turnout, counts):
                assert rows
                assert not PERSONAL & set(rows[0])
                assert not secrets & {v for r in rows for v in r.values() if isinstance(v, str)}
            by_area = {r["area"]: r for r in turnout}
            assert (by_area[HOME]["ballots"], by_area[HOME]["suppressed"]) == (3, False)
            assert (by_area[OTHER]["ballots"], by_area[OTHER]["suppressed"]) == (None, True)
            lines = {r["project_id"]: r for r in results}
            assert (lines[park]["votes"], lines[park]["winner"]) == (3, True)
            # The one ballot in OTHER is not told by its project's votes either; its winner is.
            assert (lines[path]["votes"], lines[path]["suppressed"], lines[path]["winner"]) == (None, True, True)
            assert {(r["status"], r["category"], r["area"], r["proposals"]) for r in counts} == {
                ("open", "transport", "city", 1)
            }


def test_published_vote_results_hold_no_person_and_no_withheld_cell_comes_back_by_subtraction(db, db_url, tmp_path):
    from sqlalchemy import update

    from smartcity.participation import votes_service
    from smartcity.participation.voting_models import Vote

    settings = make_settings(
        db_url, tmp_path, run_jobs=False, participation_vote_verifier="census", participation_vote_min_count=2
    )
    app = create_app(settings, db)
    make_user(db, "staff1", "staff", department="city-transport")
    # Three people in HOME and one in OTHER: OTHER's cells are below the minimum of 2.
    voters = {"vote_a": HOME, "vote_b": HOME, "vote_c": HOME, "vote_d": OTHER}
    for name in voters:
        make_user(db, name, "citizen", email=f"{name}@example.kr")
    rows = "".join(f"r-{n},{d},19{60 + i}\n" for i, (n, d) in enumerate(voters.items()))
    verification.load_census(db, "resident_id,district,birth_year\n" + rows)
    with db.session() as s:
        who = {n: identity_of_user(accounts.get_user(s, n), "key") for n in ("staff1", *voters)}
    for name in voters:
        verification.finish(db, who[name], {"resident_id": f"r-{name}"})
    now = datetime.now(UTC)
    question = {"text": "공원에 야간 조명을 달까요?", "kind": "single", "options": ["찬성", "반대"]}
    new = votes_service.NewVote("공원 야간 조명", [question], now - timedelta(minutes=1), now + timedelta(days=1))
    with db.session() as s:
        vote_id = votes_service.create(s, who["staff1"], new).id
    receipts = [votes_service.cast(db, who[n], vote_id, [[i % 2]]) for i, n in enumerate(voters)]
    with db.session() as s:
        s.execute(update(Vote).where(Vote.id == vote_id).values(closes_at=datetime.now(UTC) - timedelta(seconds=1)))
    votes_service.close_due(db)
    secrets = set(voters) | {f"{n}@example.kr" for n in voters} | {f"r-{n}" for n in voters}
    secrets |= {getattr(r, "code", None) for r in receipts} - {None}

    dataset = next(d for d in datasets([module]) if d.name == "participation.vote-results")
    for _ in range(2):
        feeds.publish_feed(db, dataset, list(db.context.modules))
    with TestClient(app) as client:
        published = _rows(client, "participation-vote-results")
    assert published and not PERSONAL & set(published[0])
    assert not secrets & {v for r in published for v in r.values() if isinstance(v, str)}
    by_option: dict[int, list[dict]] = {}
    for row in published:
        by_option.setdefault(row["option_no"], []).append(row)
    for option_rows in by_option.values():
        total = next(r["count"] for r in option_rows if not r["district_code"] and not r["age_band"])
        districts = [r["count"] for r in option_rows if r["district_code"]]
        assert any(r["district_code"] == OTHER and r["count"] is None for r in option_rows)
        # A withheld district cell never stands alone beside a published total: subtraction would tell it.
        if total is not None:
            assert sum(c is None for c in districts) != 1
