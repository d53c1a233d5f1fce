"""The demo's participatory budgets (`smartcity demo`): last year's, in the demo district, finished with its
winners; this year's, city-wide, open for the vote. Both went through every phase by the service's own calls
(propose, review, support, move); the crowd's supports are counts, and last year's crowd of ballots is made
here as anonymous roll entries ("demo-crowd:<n>") and ballots, since the demo has a handful of accounts."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import select, update

from smartcity.core.auth import identity_of_user
from smartcity.core.city import CityProfile
from smartcity.core.db import utcnow
from smartcity.core.demo import demo_district
from smartcity.core.models import User
from smartcity.participation import budgets as B
from smartcity.participation.budgets_models import Budget, BudgetBallot, BudgetProject, BudgetVoter

LAST_YEAR = "우리 동네 주민참여예산 (지난해)"
THIS_YEAR = "서울시 주민참여예산 (올해)"
# title, description, cost in won, crowd's supports, feasible (or the reason it is not)
LAST_PROJECTS = (
    (
        "어린이공원 그늘막 설치",
        "여름마다 놀이터가 너무 뜨거워 아이들이 놀 수 없습니다. 그늘막을 설치해 주세요.",
        80_000_000,
        61,
        True,
    ),
    (
        "골목길 LED 보안등 교체",
        "밤길이 어두운 골목 12곳의 보안등을 밝은 LED 등으로 바꿔 주세요.",
        120_000_000,
        48,
        True,
    ),
    (
        "경로당 무더위 쉼터 냉방기",
        "경로당 냉방기가 낡아 여름에 쉼터 역할을 못 합니다. 새 냉방기를 놓아 주세요.",
        150_000_000,
        37,
        True,
    ),
    (
        "하천 산책로 야간 조명",
        "하천 산책로에 조명을 달아 저녁에도 안전하게 걸을 수 있게 해 주세요.",
        90_000_000,
        22,
        True,
    ),
    (
        "구청 앞 대형 전광판",
        "구청 앞에 행사 안내용 대형 전광판을 세워 주세요. 주민 소식을 크게 볼 수 있습니다.",
        250_000_000,
        5,
        "옥외광고물 관리 계획상 설치할 수 없는 자리입니다.",
    ),
)
# The three most supported went to last year's vote; each crowd ballot: (indexes in LAST_PROJECTS, people).
LAST_CROWD = (((0, 1), 19), ((0, 2), 12), ((1,), 9), ((2,), 6), ((0,), 4))
THIS_PROJECTS = (
    ("한강 자전거길 쉼터 확충", "한강 자전거길 5km마다 물과 그늘이 있는 쉼터를 만들어 주세요.", 400_000_000, 33, True),
    (
        "지하철역 엘리베이터 안내 음성",
        "엘리베이터 위치를 음성으로 안내하면 시각장애인과 어르신이 편해집니다.",
        250_000_000,
        27,
        True,
    ),
    (
        "전통시장 공용 장바구니 대여",
        "전통시장 입구에서 장바구니를 빌려주고 반납받아 비닐봉지를 줄입시다.",
        150_000_000,
        19,
        True,
    ),
)


def _story(s, staff, citizen, title: str, areas: dict[str, int], projects, area: str) -> tuple[Budget, list[int]]:
    """A budget taken through proposing, reviewing and selecting to the vote by the service's calls."""
    now = utcnow()
    starts = [now + timedelta(days=n) for n in (1, 2, 3, 4)]
    budget = B.create_budget(s, staff, B.NewBudget(title, areas, *starts, forward=3 if len(projects) > 3 else 10))
    made = [B.propose(s, citizen, budget.id, B.NewProject(t, d, cost, area)).id for t, d, cost, _, _ in projects]
    B.move(s, staff, budget.id, B.REVIEWING)
    for pid, (_, _, cost, _, verdict) in zip(made, projects, strict=True):
        if verdict is True:
            B.review(s, staff, pid, True, "", cost)
        else:
            B.review(s, staff, pid, False, verdict, None)
    B.move(s, staff, budget.id, B.SELECTING)
    for pid, (*_, crowd, _verdict) in zip(made, projects, strict=True):
        s.execute(update(BudgetProject).where(BudgetProject.id == pid).values(supports=crowd))
    B.move(s, staff, budget.id, B.VOTING)
    return budget, made


def load(db, profile: CityProfile) -> Iterator[str]:
    """Idempotent: nothing is added when last year's budget is there."""
    with db.session() as s:
        if s.scalar(select(Budget.id).where(Budget.title_ko == LAST_YEAR).limit(1)) is not None:
            yield "demo budgets: already there"
            return
        people = {u.username: u for u in s.scalars(select(User).where(User.username.in_(("citizen", "staff"))))}
        if len(people) < 2:
            yield "demo budgets: skipped (no demo citizen and staff accounts)"
            return
        citizen = identity_of_user(people["citizen"], "demo")
        staff = identity_of_user(people["staff"], "demo")
        district = demo_district(profile)
        known = B.districts(s)
        area = district if district in known else B.CITY
        last, made = _story(s, staff, citizen, LAST_YEAR, {area: 300_000_000}, LAST_PROJECTS, area)
        n = 0
        for chosen, people_count in LAST_CROWD:
            picked = [made[i] for i in chosen]
            for _ in range(people_count):
                n += 1
                s.add(BudgetVoter(budget_id=last.id, voter=f"demo-crowd:{n}", area=area))
                token = secrets.token_hex(16)
                s.add_all(BudgetBallot(ballot=token, project_id=pid, budget_id=last.id) for pid in picked)
            s.execute(
                update(BudgetProject)
                .where(BudgetProject.id.in_(picked))
                .values(votes=BudgetProject.votes + people_count)
            )
        s.flush()
        B.move(s, staff, last.id, B.RESULTS)
        now = utcnow()
        ago = [now - timedelta(days=d) for d in (120, 100, 80, 60, 40)]
        s.execute(
            update(Budget)
            .where(Budget.id == last.id)
            .values(created_at=ago[0], reviewing_at=ago[1], selecting_at=ago[2], voting_at=ago[3], results_at=ago[4])
        )
        this, _ = _story(s, staff, citizen, THIS_YEAR, {B.CITY: 800_000_000}, THIS_PROJECTS, B.CITY)
        s.execute(
            update(Budget)
            .where(Budget.id == this.id)
            .values(
                created_at=now - timedelta(days=45),
                reviewing_at=now - timedelta(days=30),
                selecting_at=now - timedelta(days=20),
                voting_at=now - timedelta(days=5),
                results_at=now + timedelta(days=9),
            )
        )
    yield "demo budgets: last year's with its winners, this year's open for the vote"
