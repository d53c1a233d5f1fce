"""Participation's results as open data (issue 15, item 6): aggregated counts only, never who voted what.

Each dataset is declared here (core.module.Dataset, registered by the module's declaration) and its rows come
from the services' own read models, so a page, its CSV and the catalogue say the same:
  - participation.proposal-counts  proposals per phase, category and district (no author, no text);
  - participation.budget-results   each participatory budget's projects in the vote, votes and winners, per
                                   area (budgets_results.results: an area with fewer ballots than
                                   SMARTCITY_PARTICIPATION_BUDGET_MIN_COUNT shows no counts);
  - participation.budget-turnout   ballots per budget and area, suppressed the same way;
  - participation.vote-results     closed votes' published results by answer, district and age band
                                   (votes_service.published_results: its small cells already suppressed).
  - participation.hearings         each public hearing in numbers (hearings.open_rows).
The rows hold no person: no account, name, contact, voter key or ballot token. No dataset declares a `key`:
before the first results a dataset has no rows, hence no key column, and its rows are compared whole."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from smartcity.core.module import Dataset

_HERE = "smartcity.participation.open_data"


def proposal_counts(session) -> Iterator[dict[str, Any]]:
    """Shown proposals counted per phase, category and district ("city": the whole city)."""
    from sqlalchemy import func, select

    from smartcity.participation.models import Proposal

    rows = session.execute(
        select(Proposal.status, Proposal.category, Proposal.district_code, func.count())
        .where(Proposal.hidden.is_(False))
        .group_by(Proposal.status, Proposal.category, Proposal.district_code)
    )
    for status, category, district, count in sorted(rows, key=lambda r: (r[0], r[1], r[2] or "")):
        area = district or "city"
        key = f"{status}/{category}/{area}"
        yield {"key": key, "status": status, "category": category, "area": area, "proposals": count}


def budget_results(session) -> list[dict[str, Any]]:
    from smartcity.participation import budgets_results

    return budgets_results.published_results(session)


def budget_turnout(session) -> list[dict[str, Any]]:
    from smartcity.participation import budgets_results

    return budgets_results.turnout(session)


def hearing_counts(session) -> Iterator[dict[str, Any]]:
    from smartcity.participation import hearings

    return hearings.open_rows(session)


def vote_results(session) -> Iterator[dict[str, Any]]:
    """P5's published vote results (nothing until that service exists)."""
    try:
        from smartcity.participation import votes_service
    except ImportError:
        return iter(())
    return votes_service.published_results(session)


DATASETS = (
    Dataset(
        "proposal-counts",
        "시민 제안 단계·분야·자치구별 건수",
        f"{_HERE}:proposal_counts",
        "시민 제안을 단계·분야·자치구별로 센 건수입니다. 작성자와 본문은 담지 않습니다.",
        title_en="Citizens' proposals per phase, category and district",
        description_en="Citizens' proposals counted per phase, category and district; no author, no text.",
        tags=("participation", "proposals", "statistics"),
        theme="governance",
    ),
    Dataset(
        "budget-results",
        "주민참여예산 투표 결과",
        f"{_HERE}:budget_results",
        "투표에 오른 주민참여예산 사업의 비용과 득표 수, 지역별 선정 사업입니다. 투표 수가 너무 적은 지역의 "
        "수는 공개하지 않습니다.",
        events=("participation.budget.",),
        title_en="Participatory budget results",
        description_en="Participatory budgets' projects in the vote: cost, votes and winners per area; counts of an "
        "area with too few ballots are withheld.",
        tags=("participation", "budget", "vote"),
        theme="governance",
    ),
    Dataset(
        "budget-turnout",
        "주민참여예산 지역별 투표 참여 수",
        f"{_HERE}:budget_turnout",
        "주민참여예산별·지역별 투표 수입니다. 최소 수에 못 미치는 지역은 공개하지 않습니다.",
        events=("participation.budget.",),
        title_en="Participatory budget ballots per area",
        description_en="Ballots per participatory budget and area; an area below the minimum count is withheld.",
        tags=("participation", "budget", "vote"),
        theme="governance",
    ),
    Dataset(
        "vote-results",
        "모바일 투표 결과",
        f"{_HERE}:vote_results",
        "마감된 투표의 답변별·자치구별·연령대별 결과입니다. 수가 적은 칸은 공개하지 않습니다.",
        events=("participation.vote.",),
        title_en="Vote results",
        description_en="Closed votes' results by answer, district and age band; small cells are withheld.",
        tags=("participation", "vote"),
        theme="governance",
    ),
    # Refreshed after each hearing's events too: the refresh job publishes what they marked once a pass (every
    # few seconds), so a live session's many upvotes make at most one version per pass, and only when it changed.
    Dataset(
        "hearings",
        "공청회 참여 현황",
        f"{_HERE}:hearing_counts",
        "공청회마다 일정, 단계, 공개된 질문과 답변된 질문, 추천 수, 공청회 전후의 댓글 수, 자료, 회의록 공개 "
        "시각을 숫자로 보여 줍니다. 사람은 담지 않고, 글은 주제만 담습니다.",
        title_en="Public hearings in numbers",
        description_en="Each public hearing in numbers: schedule, phase, questions shown and answered, upvotes, "
        "comments before and after the session, documents, when the minutes came out; no person, no text but the "
        "topic.",
        events=("participation.hearing.",),
        tags=("participation", "hearing", "statistics"),
        theme="governance",
    ),
)
