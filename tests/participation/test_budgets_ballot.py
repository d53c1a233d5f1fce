"""A participatory budget's ballot on both stores: the plain form (no script) refuses an over-budget ballot with
the reason, keeps the choices ticked with their running total and stores nothing; a cast ballot's receipt is
checked by anyone (API and page) without showing what it chose, and the ballot box is checked against the
voter roll."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartcity.app import create_app
from smartcity.participation import verification
from smartcity.participation.budgets_models import BudgetBallot, BudgetVoter
from tests.conftest import make_key, make_settings, make_user, signin

API = "/api/participation/budgets"
HOME = "11230"


@pytest.fixture
def voting(db, db_url, tmp_path):
    """A budget in its vote: 100,000,000 won for HOME, two selected projects (60 and 50 million); a verified
    resident of HOME, `voter`."""
    settings = make_settings(db_url, tmp_path, run_jobs=False, participation_vote_verifier="census")
    app = create_app(settings, db)
    make_user(db, "staff1", "staff", department="city-transport")
    make_user(db, "voter", "citizen", language="ko")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("staff1", "voter")}
    now = datetime.now(UTC)
    body = {
        "title_ko": "우리 동네 주민참여예산",
        "title_en": "Our neighbourhood's budget",
        "areas": {HOME: 100_000_000},
        **{f"{p}_at": (now + timedelta(days=d)).isoformat() for p, d in (("reviewing", 1), ("selecting", 2))},
        **{f"{p}_at": (now + timedelta(days=d)).isoformat() for p, d in (("voting", 3), ("results", 4))},
    }
    with TestClient(app) as client:
        bid = client.post(API, json=body, headers=key["staff1"]).json()["id"]
        made = []
        for title, cost in (("어린이공원 그늘막 설치", 60_000_000), ("골목길 보안등 교체", 50_000_000)):
            sent = {"title": title, "description": f"{title}이 필요합니다. 여름마다 불편합니다.", "cost": cost}
            made.append(
                client.post(f"{API}/{bid}/projects", json=sent | {"area": HOME}, headers=key["voter"]).json()["id"]
            )
        for phase in ("reviewing", "selecting"):
            assert client.post(f"{API}/{bid}/phase", json={"phase": phase}, headers=key["staff1"]).status_code == 200
            for pid in made:
                if phase == "reviewing":
                    client.post(f"{API}/{bid}/projects/{pid}/review", json={"feasible": True}, headers=key["staff1"])
                else:
                    client.put(f"{API}/{bid}/projects/{pid}/support", headers=key["voter"])
        assert client.post(f"{API}/{bid}/phase", json={"phase": "voting"}, headers=key["staff1"]).status_code == 200
        verification.load_census(db, f"resident_id,district,birth_year\nr-1,{HOME},1985\n")
        done = client.post("/api/participation/verification/finish", json={"resident_id": "r-1"}, headers=key["voter"])
        assert done.status_code == 200, done.text
        yield client, key, bid, made


def _stored(db) -> tuple[int, int]:
    with db.session() as s:
        return (
            s.scalar(select(func.count()).select_from(BudgetVoter)),
            s.scalar(select(func.count()).select_from(BudgetBallot)),
        )


def test_the_plain_form_refuses_an_over_budget_ballot_and_keeps_the_choices(voting, db):
    client, _, bid, (shade, lights) = voting
    signin(client, "voter")
    page = client.get(f"/participation/budgets/{bid}")
    assert "고른 사업 0원 · 남은 예산 100,000,000원" in page.text and 'aria-live="polite"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    sent = {"csrf_token": token, "area": HOME, "project": [str(shade), str(lights)]}
    refused = client.post(f"/participation/budgets/{bid}/ballot", data=sent, follow_redirects=False)
    assert refused.status_code == 422
    assert "110,000,000원으로, 지역 예산 100,000,000원보다 많습니다" in refused.text
    assert "고른 사업 110,000,000원 · 남은 예산 -10,000,000원" in refused.text  # what was sent, summed
    ticked = re.findall(r'name="project" value="(\d+)"[^>]*checked', refused.text)
    assert sorted(map(int, ticked)) == sorted([shade, lights])  # the choices come back ticked
    assert _stored(db) == (0, 0)


def test_a_receipt_says_the_ballot_is_counted_and_never_what_it_chose(voting, db):
    client, key, bid, (shade, _) = voting
    cast = client.post(f"{API}/{bid}/ballot", json={"area": HOME, "projects": [shade]}, headers=key["voter"])
    assert cast.status_code == 201, cast.text
    receipt = cast.json()["receipt"]
    assert re.fullmatch(r"[0-9a-f]{32}", receipt)
    checked = client.get(f"{API}/{bid}/receipts/{receipt.upper()}").json()  # anyone, any case
    assert checked == {
        "budget_id": bid,
        "counted": True,
        "published": False,
        "ballots": 1,
        "voters": 1,
        "box_ok": True,
    }
    assert client.get(f"{API}/{bid}/receipts/{'0' * 32}").json()["counted"] is False
    assert client.get(f"{API}/{bid}/receipts/not-a-receipt").json()["counted"] is False
    assert client.get(f"{API}/{2**31 - 1}/receipts/{receipt}").status_code == 404

    page = client.get(f"/participation/budgets/{bid}/check", params={"code": receipt})
    assert 'data-counted="yes"' in page.text and "결과 발표 때 집계됩니다" in page.text
    assert "어린이공원" not in page.text  # the choice stays secret
    assert client.post(f"{API}/{bid}/phase", json={"phase": "results"}, headers=key["staff1"]).status_code == 200
    published = client.get(f"/participation/budgets/{bid}/receipts/{receipt}")
    assert "공개된 결과에 집계되었습니다" in published.text and 'data-ok="yes"' in published.text


def test_a_ballot_from_the_page_leads_to_its_receipt(voting, db):
    client, _, bid, (shade, _) = voting
    signin(client, "voter")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/participation/budgets/{bid}").text).group(1)
    sent = {"csrf_token": token, "area": HOME, "project": [str(shade)]}
    cast = client.post(f"/participation/budgets/{bid}/ballot", data=sent, follow_redirects=False)
    assert cast.status_code == 303
    where = cast.headers["location"]
    assert re.fullmatch(rf"/participation/budgets/{bid}/receipts/[0-9a-f]{{32}}\?new=1", where)
    shown = client.get(where)
    assert "영수증 번호" in shown.text and 'data-counted="yes"' in shown.text
    assert _stored(db) == (1, 1)
