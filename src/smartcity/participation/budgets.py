"""Participatory budgets (issue 15, item 4), the CONSUL way: a budget's money is split into areas (districts,
or the whole city); it moves through phases — proposing, reviewing, selecting, voting, results — by its
dates (the `participation.budgets` job) or by staff; citizens propose projects, staff review them, citizens
support them (the most supported of each area go to the vote), verified people vote once, and each area's
winners are its projects in order of votes, each taken if it still fits the money left.

The rules live here; budgets_api.py and budgets_pages.py are thin.

Secrecy: the voter roll (`BudgetVoter`: who voted, where) and the ballot box (`BudgetBallot`: a random token
and the chosen projects) share no column; neither keeps a time or a row id. The audit says that a person
voted in a budget's area, never what they chose.

Race safety: whatever a phase allows (a project, a review, a support, a ballot) first takes the budget's row
(an UPDATE guarded by that phase), so it waits for, or is refused after, the move out of the phase — no
support lands after the selection, no ballot after the winners are counted; the move's UPDATE is guarded by
the phase it leaves, so of two moves at once only one counts. One ballot per person is the roll's primary
key (INSERT … ON CONFLICT DO NOTHING), the same on both stores."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.db import Database, as_utc, utcnow
from smartcity.core.errors import (
    Conflict,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    SmartCityError,
)
from smartcity.core.events import publish
from smartcity.core.i18n import N_, gettext, localized
from smartcity.core.models import District
from smartcity.participation import follows
from smartcity.participation.budgets_models import (
    APPROVAL,
    CITY,
    KNAPSACK,
    PHASES,
    PROPOSING,
    RESULTS,
    REVIEWING,
    SELECTING,
    VOTING,
    Budget,
    BudgetArea,
    BudgetBallot,
    BudgetProject,
    BudgetSupport,
    BudgetVoter,
)

PHASE_NAMES = {
    PROPOSING: N_("Proposing projects"),
    REVIEWING: N_("Reviewing projects"),
    SELECTING: N_("Selecting projects"),
    VOTING: N_("Voting"),
    RESULTS: N_("Results"),
}
PROJECT_STATUSES = {
    "proposed": N_("Proposed"),
    "feasible": N_("Feasible"),
    "unfeasible": N_("Not feasible"),
    "selected": N_("In the vote"),
    "winner": N_("Winner"),
}
BALLOTS = {KNAPSACK: N_("Spend the area's money"), APPROVAL: N_("Approve up to N projects")}
TITLE_MAX, TEXT_MAX, REASON_MAX = 200, 5_000, 2_000
MONEY_MAX = 10**15  # won: far above any city's budget, far below the stores' BIGINT
ACTOR_JOB = "job:participation.budgets"
TOPIC = "participation.budget"
KIND = "budget"  # what follows.FOLLOWABLE calls a budget


def _text(value: str, name: str, least: int, most: int) -> str:
    text = (value or "").strip()
    if len(text) < least:
        short = N_("the text is too short: write at least {count} characters")
        raise InvalidInput(short, params={"count": least}, details={"field": name})
    if len(text) > most:
        long = N_("the text is too long: write at most {count} characters")
        raise InvalidInput(long, params={"count": most}, details={"field": name})
    return text


def _money(value: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MONEY_MAX:
        raise InvalidInput(N_("an amount of money must be a whole number of won above zero"), details={"field": name})
    return value


def _person(identity: Identity) -> int:
    check(identity, "participation.take_part")
    if identity.user_id is None:
        raise PermissionDenied(N_("only a person's account can take part"), code="person_only")
    return identity.user_id


def voter_key(session: Session, identity: Identity) -> str:
    """The key that makes a ballot one per person. The seam to verification (participation/verification.py):
    its `voter_key` is a verified person's identity hash, the same from any of their accounts, and refuses an
    unverified account; where that module is absent, a signed-in account is the person."""
    _person(identity)
    try:
        from smartcity.participation import verification
    except ImportError:
        return f"user:{identity.user_id}"
    return verification.voter_key(session, identity)


def may_vote(session: Session, identity: Identity) -> bool:
    """Whether the caller can cast a ballot at all (signed in, and verified where verification exists)."""
    try:
        voter_key(session, identity)
    except (PermissionDenied, NotAuthenticated):
        return False
    return True


def home_district(session: Session, identity: Identity) -> str | None:
    """The district verification found the person living in (None where it is not known)."""
    try:
        from smartcity.participation import verification
    except ImportError:
        return None
    found = verification.verified(session, identity.user_id)
    return found.district_code if found is not None else None


# --- budgets --------------------------------------------------------------------------------------------


@dataclass
class NewBudget:
    title_ko: str
    areas: dict[str, int]  # area (a district's code, or "city") → money in won
    reviewing_at: datetime
    selecting_at: datetime
    voting_at: datetime
    results_at: datetime
    title_en: str = ""
    description: str = ""
    ballot: str = KNAPSACK
    approvals: int | None = None
    forward: int = 10


def create_budget(session: Session, identity: Identity, new: NewBudget) -> Budget:
    """A budget, proposing from now on; its phases start at the given times, in order."""
    check(identity, "participation.budgets")
    title_ko = _text(new.title_ko, "title_ko", 3, TITLE_MAX)
    title_en = (new.title_en or "").strip()[:TITLE_MAX]
    if not new.areas:
        raise InvalidInput(N_("a budget needs money for the whole city or for at least one district"))
    for area, money in new.areas.items():
        if area != CITY and session.scalar(select(District.id).where(District.code == area)) is None:
            raise InvalidInput(N_("no district {code}"), params={"code": area}, code="unknown_district")
        _money(money, f"areas.{area}")
    if CITY in new.areas and len(new.areas) > 1:
        raise InvalidInput(N_("a budget is either city-wide or split by district, not both"))
    now = utcnow()
    starts = [as_utc(t) for t in (new.reviewing_at, new.selecting_at, new.voting_at, new.results_at)]
    if not all(a < b for a, b in zip([now, *starts], starts, strict=False)):
        raise InvalidInput(N_("the phases' start times must come after now and one after another"))
    if new.ballot not in BALLOTS:
        raise InvalidInput(N_("unknown ballot; ballots are: {known}"), params={"known": ", ".join(BALLOTS)})
    if new.ballot == APPROVAL and not (new.approvals and 0 < new.approvals <= 100):
        raise InvalidInput(N_("an approval ballot needs how many projects a voter may approve (1 to 100)"))
    if not 0 < new.forward <= 1000:
        raise InvalidInput(N_("between 1 and 1000 projects of an area may go to the vote"))
    budget = Budget(
        title_ko=title_ko,
        title_en=title_en,
        description=(new.description or "").strip()[:TEXT_MAX],
        total=sum(new.areas.values()),
        ballot=new.ballot,
        approvals=new.approvals if new.ballot == APPROVAL else None,
        forward=new.forward,
        phase=PROPOSING,
        reviewing_at=starts[0],
        selecting_at=starts[1],
        voting_at=starts[2],
        results_at=starts[3],
        created_by=identity.user_id,
        created_at=now,
    )
    session.add(budget)
    session.flush()
    session.add_all(BudgetArea(budget_id=budget.id, area=a, money=m) for a, m in sorted(new.areas.items()))
    audit.record(session, identity, "create", "participation.budget", budget.id, {"total": budget.total})
    publish(session, f"{TOPIC}.created", {"budget_id": budget.id})
    return budget


def get_budget(session: Session, budget_id: int) -> Budget:
    budget = session.get(Budget, budget_id)
    if budget is None:
        raise NotFound(N_("no budget {id}"), params={"id": budget_id})
    return budget


def districts(session: Session) -> dict[str, District]:
    """The city's districts by code (the pages name areas with them)."""
    return {d.code: d for d in session.scalars(select(District).order_by(District.code))}


def budgets(session: Session) -> list[Budget]:
    """Every budget, the newest first."""
    return list(session.scalars(select(Budget).order_by(Budget.id.desc())))


def areas(session: Session, budget_id: int) -> dict[str, int]:
    """A budget's areas and their money, in the areas' order."""
    rows = session.execute(
        select(BudgetArea.area, BudgetArea.money).where(BudgetArea.budget_id == budget_id).order_by(BudgetArea.area)
    )
    return {area: money for area, money in rows}


def phase_starts(budget: Budget) -> dict[str, datetime]:
    return {
        PROPOSING: budget.created_at,
        REVIEWING: budget.reviewing_at,
        SELECTING: budget.selecting_at,
        VOTING: budget.voting_at,
        RESULTS: budget.results_at,
    }


def _move(session: Session, actor, budget: Budget, to: str) -> bool:
    """Move a budget forward to `to`, through the phases between (selecting the projects that go to the vote
    on entering voting, the winners on entering results). False when another move got there first."""
    if to not in PHASES:
        raise InvalidInput(N_("unknown phase; phases are: {known}"), params={"known": ", ".join(PHASES)})
    start = PHASES.index(budget.phase)
    if PHASES.index(to) <= start:
        raise Conflict(N_("a budget's phase only moves forward"), code="phase_backwards")
    moved = session.execute(
        update(Budget).where(Budget.id == budget.id, Budget.phase == budget.phase).values(phase=to)
    ).rowcount
    if not moved:
        return False
    for passed in PHASES[start + 1 : PHASES.index(to) + 1]:
        if passed == VOTING:
            _select(session, budget.id, budget.forward)
        elif passed == RESULTS:
            _mark_winners(session, budget.id)
    session.refresh(budget)
    audit.record(session, actor, "move_phase", "participation.budget", budget.id, {"to": to})
    follows.notify_followers(
        session,
        KIND,
        budget.id,
        N_("The participatory budget “{title}” is now in a new phase: {phase}."),
        subject=N_("News of a participatory budget"),
        params=lambda language: {
            "title": localized(budget, "title", language, "ko"),
            "phase": gettext(language, PHASE_NAMES[to]),
        },
    )
    publish(session, f"{TOPIC}.phase", {"budget_id": budget.id, "phase": to})
    return True


def move(session: Session, identity: Identity, budget_id: int, to: str) -> Budget:
    """Staff move a budget to a later phase now (the job moves it by its dates)."""
    check(identity, "participation.budgets")
    budget = get_budget(session, budget_id)
    if not _move(session, identity, budget, to):
        raise Conflict(N_("the budget moved meanwhile; look again"), code="moved")
    return budget


def due_phase(budget: Budget, now: datetime) -> str:
    """The latest phase whose start time has come."""
    begun = [p for p, start in phase_starts(budget).items() if as_utc(start) <= now]
    return begun[-1] if begun else PROPOSING


def advance_due(db: Database, now: datetime | None = None) -> list[tuple[int, str]]:
    """The job: move each budget whose next phase's start has come; (budget, phase) moved."""
    now = now or utcnow()
    done = []
    with db.session() as s:
        ids = s.scalars(select(Budget.id).where(Budget.phase != RESULTS).order_by(Budget.id)).all()
    for budget_id in ids:
        with db.session() as s:
            budget = s.get(Budget, budget_id)
            to = due_phase(budget, now)
            if PHASES.index(to) > PHASES.index(budget.phase) and _move(s, ACTOR_JOB, budget, to):
                done.append((budget_id, to))
    return done


# --- projects -------------------------------------------------------------------------------------------


@dataclass
class NewProject:
    title: str
    description: str
    cost: int
    area: str
    lat: float | None = None
    lon: float | None = None


def _in_phase(session: Session, budget: Budget, phase: str) -> None:
    """Refuse unless the budget is in `phase`, and hold its row until the caller commits: a move out of the
    phase waits for this change (the selection and the winners count it) or refuses it."""
    held = session.execute(
        update(Budget).where(Budget.id == budget.id, Budget.phase == phase).values(phase=phase)
    ).rowcount
    if not held:
        session.refresh(budget)
        raise Conflict(
            N_("this budget is not in the phase for that: it is now {phase}"),
            params={"phase": budget.phase},
            code="wrong_phase",
        )


def propose(session: Session, identity: Identity, budget_id: int, new: NewProject) -> BudgetProject:
    """A citizen's project for one of the budget's areas, while it takes proposals."""
    author = _person(identity)
    budget = get_budget(session, budget_id)
    _in_phase(session, budget, PROPOSING)
    money = areas(session, budget_id)
    if new.area not in money:
        raise InvalidInput(
            N_("this budget has no money for {area}; its areas are: {known}"),
            params={"area": new.area, "known": ", ".join(money)},
            code="unknown_area",
        )
    cost = _money(new.cost, "cost")
    if cost > money[new.area]:
        raise InvalidInput(
            N_("the project costs more than the area's money ({money} won)"),
            params={"money": f"{money[new.area]:,}"},
            code="too_costly",
        )
    if (new.lat is None) != (new.lon is None):
        raise InvalidInput(N_("a map point needs both latitude and longitude"))
    if new.lat is not None:
        from smartcity.core.geo import geo_index

        geo_index(session.info["db"]).locate(new.lat, new.lon)  # OutsideCity, or a bad coordinate
    project = BudgetProject(
        budget_id=budget_id,
        author_id=author,
        area=new.area,
        title=_text(new.title, "title", 5, TITLE_MAX),
        description=_text(new.description, "description", 20, TEXT_MAX),
        cost=cost,
        lat=new.lat,
        lon=new.lon,
        status="proposed",
        supports=0,
        votes=0,
        winner=False,
        created_at=utcnow(),
    )
    session.add(project)
    session.flush()
    audit.record(session, identity, "create", "participation.budget_project", project.id, {"budget": budget_id})
    follows.follow(session, identity, KIND, budget_id, True)  # its author hears of the budget's next phases
    return project


def get_project(session: Session, project_id: int) -> BudgetProject:
    project = session.get(BudgetProject, project_id)
    if project is None:
        raise NotFound(N_("no project {id}"), params={"id": project_id})
    return project


def projects(session: Session, budget_id: int, area: str | None = None) -> list[BudgetProject]:
    """A budget's projects (of one area), the most supported first, then the oldest."""
    query = select(BudgetProject).where(BudgetProject.budget_id == budget_id)
    if area:
        query = query.where(BudgetProject.area == area)
    order = (BudgetProject.area, BudgetProject.supports.desc(), BudgetProject.id)
    return list(session.scalars(query.order_by(*order)))


def price(project: BudgetProject) -> int:
    """What a project costs the ballot: the review's estimate, else its author's figure."""
    return project.estimated_cost or project.cost


def review(
    session: Session, identity: Identity, project_id: int, feasible: bool, reason: str, estimated_cost: int | None
) -> BudgetProject:
    """Staff mark a project feasible (with the estimated cost) or not (with the reason); audited."""
    check(identity, "participation.budgets")
    project = get_project(session, project_id)
    budget = get_budget(session, project.budget_id)
    _in_phase(session, budget, REVIEWING)
    if feasible:
        estimate = _money(estimated_cost, "estimated_cost") if estimated_cost is not None else project.cost
        money = areas(session, budget.id)[project.area]
        if estimate > money:
            raise InvalidInput(
                N_("the project costs more than the area's money ({money} won)"),
                params={"money": f"{money:,}"},
                code="too_costly",
            )
        why = (reason or "").strip()[:REASON_MAX] or None
    else:
        estimate = estimated_cost
        why = _text(reason, "reason", 5, REASON_MAX)
    project.status = "feasible" if feasible else "unfeasible"
    project.review_reason, project.estimated_cost, project.reviewed_at = why, estimate, utcnow()
    session.flush()
    detail = {"feasible": feasible, "estimated_cost": estimate}
    audit.record(session, identity, "review_project", "participation.budget_project", project.id, detail)
    return project


def _insert_once(session: Session, model, **values) -> bool:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    key = model.__table__.primary_key.columns[0]
    statement = dialect.insert(model).values(**values).on_conflict_do_nothing().returning(key)
    return session.execute(statement).first() is not None  # rowcount is not told with RETURNING


def support(db: Database, identity: Identity, project_id: int) -> BudgetProject:
    """Support a feasible project while the budget selects; once per person (again changes nothing)."""
    person = _person(identity)
    with db.session() as s:
        project = get_project(s, project_id)
        _in_phase(s, get_budget(s, project.budget_id), SELECTING)
        if project.status != "feasible":
            raise Conflict(N_("only a feasible project can be supported"), code="not_feasible")
        if _insert_once(s, BudgetSupport, project_id=project_id, user_id=person):
            s.execute(
                update(BudgetProject).where(BudgetProject.id == project_id).values(supports=BudgetProject.supports + 1)
            )
            s.refresh(project)
        return project


def supported(session: Session, identity: Identity, budget_id: int) -> set[int]:
    """The projects of a budget the caller supports."""
    if identity.user_id is None:
        return set()
    rows = session.scalars(
        select(BudgetSupport.project_id)
        .join(BudgetProject, BudgetProject.id == BudgetSupport.project_id)
        .where(BudgetProject.budget_id == budget_id, BudgetSupport.user_id == identity.user_id)
    )
    return set(rows)


def _select(session: Session, budget_id: int, forward: int) -> None:
    """The `forward` most supported feasible projects of each area go to the vote (at least one support each;
    ties: the older project first)."""
    chosen: dict[str, int] = {}
    for project in projects(session, budget_id):
        if project.status != "feasible" or project.supports < 1:
            continue
        if chosen.get(project.area, 0) < forward:
            chosen[project.area] = chosen.get(project.area, 0) + 1
            project.status = "selected"
    session.flush()


# --- the vote -------------------------------------------------------------------------------------------


def cast(db: Database, identity: Identity, budget_id: int, area: str, chosen: Sequence[int]) -> str:
    """One ballot per person per budget, for one area's projects in the vote: their costs together within the
    area's money (knapsack), or at most N of them (approval). A district's projects are voted by the people
    verification found living there (anyone verified votes for city-wide ones). Returns the area."""
    cast_ballot(db, identity, budget_id, area, chosen)
    return area


def cast_ballot(db: Database, identity: Identity, budget_id: int, area: str, chosen: Sequence[int]) -> str:
    """Cast as `cast` does; returns the ballot's receipt: the voter alone holds it (nothing links it to the roll),
    and budgets_receipts.check_receipt tells whether it is counted without telling what was chosen."""
    try:
        with db.session() as s:
            receipt = _cast(s, identity, budget_id, area, chosen)
    except SmartCityError as refusal:
        # The refused transaction rolled back: the refusal is audited in one of its own.
        with db.session() as s:
            detail = {"reason": refusal.code, "area": area}
            audit.record(s, identity, "refuse_budget_ballot", "participation.budget", budget_id, detail)
        raise
    return receipt


def _cast(s: Session, identity: Identity, budget_id: int, area: str, chosen: Sequence[int]) -> str:
    key = voter_key(s, identity)
    budget = get_budget(s, budget_id)
    _in_phase(s, budget, VOTING)
    money = areas(s, budget_id)
    if area not in money:
        raise InvalidInput(
            N_("this budget has no money for {area}; its areas are: {known}"),
            params={"area": area, "known": ", ".join(money)},
            code="unknown_area",
        )
    home = home_district(s, identity)
    if area != CITY and home is not None and home != area:
        raise PermissionDenied(N_("you may vote only for your own district's projects"), code="other_district")
    picked = list(dict.fromkeys(chosen))
    if not picked:
        raise InvalidInput(N_("choose at least one project"), code="empty_ballot")
    found = {
        p.id: p
        for p in s.scalars(
            select(BudgetProject).where(
                BudgetProject.id.in_(picked),
                BudgetProject.budget_id == budget_id,
                BudgetProject.area == area,
                BudgetProject.status == "selected",
            )
        )
    }
    strangers = [pid for pid in picked if pid not in found]
    if strangers:
        raise InvalidInput(
            N_("these projects are not in this area's vote: {ids}"),
            params={"ids": ", ".join(map(str, strangers))},
            code="not_in_vote",
        )
    if budget.ballot == KNAPSACK:
        spent = sum(price(found[pid]) for pid in picked)
        if spent > money[area]:
            raise InvalidInput(
                N_("the chosen projects cost {spent} won, more than the area's {money} won"),
                params={"spent": f"{spent:,}", "money": f"{money[area]:,}"},
                code="over_budget",
            )
    elif len(picked) > (budget.approvals or 0):
        raise InvalidInput(N_("approve at most {count} projects"), params={"count": budget.approvals}, code="too_many")
    if not _insert_once(s, BudgetVoter, budget_id=budget_id, voter=key, area=area):
        raise Conflict(N_("you have already voted in this budget"), code="already_voted")
    token = secrets.token_hex(16)
    s.add_all(BudgetBallot(ballot=token, project_id=pid, budget_id=budget_id) for pid in picked)
    s.execute(update(BudgetProject).where(BudgetProject.id.in_(picked)).values(votes=BudgetProject.votes + 1))
    audit.record(s, identity, "cast_budget_ballot", "participation.budget", budget_id, {"area": area})
    return token


def voted_area(session: Session, identity: Identity, budget_id: int) -> str | None:
    """Where the caller voted in a budget (None: not yet, or not signed in). What they chose is not kept."""
    if identity.user_id is None:
        return None
    try:
        key = voter_key(session, identity)
    except PermissionDenied:
        return None
    return session.scalar(select(BudgetVoter.area).where(BudgetVoter.budget_id == budget_id, BudgetVoter.voter == key))


# --- results --------------------------------------------------------------------------------------------


def winners(candidates: Iterable[BudgetProject], money: int) -> list[int]:
    """The winning projects of one area, as CONSUL computes them: in order of votes (ties: the cheaper, then
    the older project first), each taken if it still fits the money left, skipping those that do not; a
    project without votes does not win."""
    left, won = money, []
    for project in sorted(candidates, key=lambda p: (-p.votes, price(p), p.id)):
        if project.votes > 0 and price(project) <= left:
            won.append(project.id)
            left -= price(project)
    return won


def _mark_winners(session: Session, budget_id: int) -> None:
    money = areas(session, budget_id)
    in_vote = [p for p in projects(session, budget_id) if p.status == "selected"]
    for area, amount in money.items():
        won = set(winners([p for p in in_vote if p.area == area], amount))
        for project in in_vote:
            if project.id in won:
                project.winner, project.status = True, "winner"
    session.flush()
