"""Votes the mVoting way: staff set up a vote (questions, times, a target), verified citizens cast one ballot
each, the results appear at the close with a breakdown by district and age band.

One person, one vote: a cast writes the voter roll first — an INSERT … ON CONFLICT DO NOTHING under two
unique keys, (vote, identity hash) and (vote, account) — so a second account of a verified person, a double
submit, or the same ballot from two processes at once finds the row there and is refused. Casts are stored in
groups by the store's writer (votes_casting.py); the checks they go through are this module's.

Secret ballots: the ballot row carries no account and no time, only the answers and the voter's district and
age band (coarse, for the breakdown). Ballots wait with random ids until `vote_batch` of them are there; then
`seal` puts the batch into the vote's hash chain in the order of those random ids, so neither the chain nor the
roll's order tells whose ballot is whose. Sealing runs under the vote row's lock (the UPDATE of its counter),
one writer per vote on both stores.

Tamper evidence: the chain (votes_chain.py); the voter keeps a receipt code whose SHA-256 is in their ballot."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.db import Database, as_utc, utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound
from smartcity.core.geo import haversine_m
from smartcity.core.i18n import N_
from smartcity.core.models import District, Neighbourhood
from smartcity.participation import votes_casting as casting
from smartcity.participation.verification import NOT_VERIFIED, age_on, rules
from smartcity.participation.votes_casting import Receipt
from smartcity.participation.votes_chain import seal
from smartcity.participation.voting_models import Ballot, Verification, Vote, VoterRoll

SUBJECT = "participation.vote"
KINDS = {"single": N_("One choice"), "multiple": N_("Several choices"), "ranking": N_("Ranking")}
AGE_BANDS = (
    N_("under 20"),
    N_("20 to 29"),
    N_("30 to 39"),
    N_("40 to 49"),
    N_("50 to 59"),
    N_("60 to 69"),
    N_("70 to 79"),
    N_("80 and over"),
)
UPCOMING, OPEN, CLOSED = "upcoming", "open", "closed"
STATUSES = {UPCOMING: N_("Not open yet"), OPEN: N_("Open for voting"), CLOSED: N_("Voting closed")}
TITLE_MAX, TEXT_MAX, OPTION_MAX, MAX_QUESTIONS, MAX_OPTIONS = 200, 5_000, 200, 20, 20


def age_band(age: int) -> int:
    """0: under 20, 1: 20s, …, 6: 70s, 7: 80 and over."""
    return 0 if age < 20 else min(7, age // 10 - 1)


def status_of(vote: Vote, now: datetime | None = None) -> str:
    now = now or utcnow()
    return UPCOMING if now < as_utc(vote.opens_at) else OPEN if now < as_utc(vote.closes_at) else CLOSED


# --- setting a vote up ------------------------------------------------------------------------------


@dataclass
class NewVote:
    title: str
    questions: Sequence[Mapping[str, Any]]
    opens_at: datetime
    closes_at: datetime
    description: str = ""
    target: Mapping[str, Any] = field(default_factory=dict)
    results_hidden: bool = True
    min_count: int | None = None


LENGTHS = {
    "title": N_("write a title of {least} to {most} characters"),
    "question": N_("write each question in {least} to {most} characters"),
    "option": N_("write each option in {least} to {most} characters"),
}


def _text(value: Any, field_name: str, least: int, most: int) -> str:
    text = " ".join(str(value or "").split()) if most <= OPTION_MAX else str(value or "").strip()
    if not least <= len(text) <= most:
        params = {"least": least, "most": most}
        raise InvalidInput(LENGTHS[field_name], params=params, details={"field": field_name})
    return text


def _questions(raw: Sequence[Mapping[str, Any]]) -> list[dict]:
    if not 1 <= len(raw or ()) <= MAX_QUESTIONS:
        raise InvalidInput(N_("a vote has 1 to {most} questions"), params={"most": MAX_QUESTIONS})
    made = []
    for q in raw:
        kind = q.get("kind", "single")
        if kind not in KINDS:
            raise InvalidInput(N_("unknown kind of question; kinds are: {known}"), params={"known": ", ".join(KINDS)})
        options = [_text(o, "option", 1, OPTION_MAX) for o in q.get("options") or ()]
        if not 2 <= len(options) <= MAX_OPTIONS or len(set(options)) != len(options):
            raise InvalidInput(N_("a question has 2 to {most} different options"), params={"most": MAX_OPTIONS})
        most = 1 if kind == "single" else int(q.get("max_choices") or len(options))
        if not 1 <= most <= len(options):
            raise InvalidInput(N_("choices allowed must be between 1 and the number of options"))
        made.append(
            {"text": _text(q.get("text"), "question", 2, 300), "kind": kind, "options": options, "max_choices": most}
        )
    return made


def _target(session: Session, raw: Mapping[str, Any]) -> dict:
    districts = sorted({str(c) for c in raw.get("districts") or ()})
    hoods = sorted({str(c) for c in raw.get("neighbourhoods") or ()})
    bands = sorted({int(b) for b in raw.get("age_bands") or ()})
    if districts and len(set(session.scalars(select(District.code).where(District.code.in_(districts))))) != len(
        districts
    ):
        raise InvalidInput(N_("the target names a district the city does not have"), code="unknown_district")
    if hoods and len(set(session.scalars(select(Neighbourhood.code).where(Neighbourhood.code.in_(hoods))))) != len(
        hoods
    ):
        raise InvalidInput(N_("the target names a neighbourhood the city does not have"), code="unknown_neighbourhood")
    if any(not 0 <= b < len(AGE_BANDS) for b in bands):
        raise InvalidInput(N_("age bands are numbered 0 to 7"), code="bad_age_band")
    target: dict[str, Any] = {"districts": districts, "neighbourhoods": hoods, "age_bands": bands, "point": None}
    point = raw.get("point")
    if point:
        from smartcity.core.geo import geo_index

        where = geo_index(session.info["db"]).locate(point.get("lat"), point.get("lon"))
        radius = float(point.get("radius_m") or 0)
        if not 50 <= radius <= 100_000:
            raise InvalidInput(N_("the distance must be between 50 m and 100 km"), code="bad_radius")
        target["point"] = {"lat": where.lat, "lon": where.lon, "radius_m": radius}
    return target


def _checked(session: Session, new: NewVote) -> dict:
    opens, closes = as_utc(new.opens_at), as_utc(new.closes_at)
    if closes <= opens:
        raise InvalidInput(N_("a vote must close after it opens"), code="bad_times")
    if new.min_count is not None and not 1 <= new.min_count <= 10_000:
        raise InvalidInput(N_("the minimum count must be between 1 and 10000"))
    return dict(
        title=_text(new.title, "title", 5, TITLE_MAX),
        description=str(new.description or "").strip()[:TEXT_MAX],
        questions=_questions(new.questions),
        target=_target(session, new.target or {}),
        opens_at=opens,
        closes_at=closes,
        results_hidden=bool(new.results_hidden),
        min_count=new.min_count,
    )


def create(session: Session, identity: Identity, new: NewVote) -> Vote:
    """Set up a vote (staff holding participation.run_votes)."""
    check(identity, "participation.run_votes")
    vote = Vote(**_checked(session, new), created_by=identity.user_id, received=0, ballots=0, chain_head="")
    session.add(vote)
    session.flush()
    audit.record(session, identity, "create", SUBJECT, vote.id)
    return vote


def edit(session: Session, identity: Identity, vote_id: int, new: NewVote) -> Vote:
    """Change a vote before it opens (after, its ballots were cast on what it said)."""
    check(identity, "participation.run_votes")
    vote = get(session, vote_id)
    if status_of(vote) != UPCOMING or vote.received:
        raise Conflict(N_("a vote can be changed only before it opens"), code="already_open")
    for name, value in _checked(session, new).items():
        setattr(vote, name, value)
    audit.record(session, identity, "edit", SUBJECT, vote.id)
    return vote


def get(session: Session, vote_id: int) -> Vote:
    vote = session.get(Vote, vote_id)
    if vote is None:
        raise NotFound(N_("no vote {id}"), params={"id": vote_id})
    return vote


def listing(session: Session, limit: int = 100, offset: int = 0) -> list[Vote]:
    """Votes, the latest to close first."""
    query = select(Vote).order_by(Vote.closes_at.desc(), Vote.id.desc()).limit(max(1, min(limit, 200))).offset(offset)
    return list(session.scalars(query))


# --- who may vote -----------------------------------------------------------------------------------


def ineligible(vote: Vote, person: Verification | None, now: datetime | None = None) -> str | None:
    """Why this verified person is outside the vote's target (a code), or None when they may vote."""
    if person is None:
        return "not_verified"
    target = vote.target or {}
    if target.get("districts") and person.district_code not in target["districts"]:
        return "outside_district"
    if target.get("neighbourhoods") and person.neighbourhood_code not in target["neighbourhoods"]:
        return "outside_neighbourhood"
    band = age_band(age_on(person.birth_year, as_utc(vote.opens_at)))
    if target.get("age_bands") and band not in target["age_bands"]:
        return "outside_age"
    point = target.get("point")
    if point:
        if person.home_lat is None or person.home_lon is None:
            return "no_home"
        if haversine_m(point["lat"], point["lon"], person.home_lat, person.home_lon) > point["radius_m"]:
            return "too_far"
    return None


REFUSALS = {
    "not_verified": NOT_VERIFIED,
    "outside_district": N_("this vote is for residents of other districts"),
    "outside_neighbourhood": N_("this vote is for residents of other neighbourhoods"),
    "outside_age": N_("this vote is for other age groups"),
    "no_home": N_("this vote is for people living near a place: verify again with your home on the map"),
    "too_far": N_("this vote is for people living nearer the place"),
}


def has_voted(session: Session, vote_id: int, user_id: int | None) -> bool:
    if user_id is None:
        return False
    found = select(VoterRoll.id).where(VoterRoll.vote_id == vote_id, VoterRoll.user_id == user_id)
    return session.scalar(found) is not None


# --- casting ----------------------------------------------------------------------------------------


def canonical_answers(questions: Sequence[Mapping[str, Any]], answers: Any) -> str:
    """The answers as the ballot keeps them (and the chain hashes them): option numbers per question, a
    choice's sorted, a ranking's in its order; refused unless each question is answered as its kind says."""
    if not isinstance(answers, list | tuple) or len(answers) != len(questions):
        raise InvalidInput(N_("answer every question of the vote"), code="bad_answers")
    made = []
    for q, chosen in zip(questions, answers, strict=True):
        picks = list(chosen) if isinstance(chosen, list | tuple) else [chosen]
        if not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p < len(q["options"]) for p in picks):
            raise InvalidInput(N_("an answer names an option the question does not have"), code="bad_answers")
        if len(set(picks)) != len(picks):
            raise InvalidInput(N_("an option is chosen twice"), code="bad_answers")
        most = q["max_choices"]
        if q["kind"] == "single" and len(picks) != 1:
            raise InvalidInput(N_("choose one option"), code="bad_answers")
        if q["kind"] == "multiple" and not 1 <= len(picks) <= most:
            raise InvalidInput(N_("choose between 1 and {most} options"), params={"most": most}, code="bad_answers")
        if q["kind"] == "ranking" and len(picks) != most:
            raise InvalidInput(N_("rank {most} options"), params={"most": most}, code="bad_answers")
        made.append(picks if q["kind"] == "ranking" else sorted(picks))
    return json.dumps(made, separators=(",", ":"))


def receipt_hash(code: str) -> str:
    """SHA-256 of a receipt code as the voter may write it (case, spaces and dashes do not matter)."""
    plain = "".join(code.split()).replace("-", "").upper()
    return hashlib.sha256(plain.encode()).hexdigest()


def new_receipt() -> str:
    raw = secrets.token_hex(8).upper()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def cast(db: Database, identity: Identity, vote_id: int, answers: Any) -> Receipt:
    """Cast a verified person's ballot; the receipt code is theirs to check it is counted. Each refusal
    (not open, closed, unverified, outside the target, voted already, bad answers) is audited. The cast is
    stored with the others that arrive meanwhile, in one transaction of the store's writer (votes_casting.py)."""
    return casting.submit(db, casting.Cast(vote_id, answers, identity)).result()


async def acast(db: Database, identity: Identity, vote_id: int, answers: Any) -> Receipt:
    """`cast` from the event loop: the loop serves other requests while the cast waits for its group."""
    return await asyncio.wrap_future(casting.submit(db, casting.Cast(vote_id, answers, identity)))


def check_receipt(session: Session, vote_id: int, code: str) -> dict:
    """Whether the ballot of this receipt is in the ballot box, and its place in the chain once sealed."""
    get(session, vote_id)
    found = session.execute(
        select(Ballot.position, Ballot.chain_hash).where(
            Ballot.vote_id == vote_id, Ballot.receipt_hash == receipt_hash(code)
        )
    ).first()
    if found is None:
        return {"vote_id": vote_id, "counted": False, "sealed": False, "position": None, "chain_hash": None}
    return {
        "vote_id": vote_id,
        "counted": True,
        "sealed": found.position is not None,
        "position": found.position,
        "chain_hash": found.chain_hash,
    }


# --- results ----------------------------------------------------------------------------------------


def tally(session: Session, vote: Vote, min_count: int) -> dict:
    """Counts per answer, by district and by age band, from one GROUP BY over the ballot box (the distinct
    combinations are few; each is parsed once). Breakdown cells below `min_count` are None."""
    questions = vote.questions
    rows = session.execute(
        select(Ballot.answers, Ballot.district_code, Ballot.age_band, func.count())
        .where(Ballot.vote_id == vote.id)
        .group_by(Ballot.answers, Ballot.district_code, Ballot.age_band)
    ).all()
    counts = [[0] * len(q["options"]) for q in questions]
    points = [[0] * len(q["options"]) for q in questions]
    by_district: list[list[dict[str, int]]] = [[{} for _ in q["options"]] for q in questions]
    by_band = [[[0] * len(AGE_BANDS) for _ in q["options"]] for q in questions]
    turnout_district: dict[str, int] = {}
    turnout_band = [0] * len(AGE_BANDS)
    total = 0
    parsed: dict[str, list] = {}
    for answers, district, band, n in rows:
        picks = parsed.get(answers) or parsed.setdefault(answers, json.loads(answers))
        total += n
        turnout_district[district] = turnout_district.get(district, 0) + n
        turnout_band[band] += n
        for qi, chosen in enumerate(picks):
            ranking = questions[qi]["kind"] == "ranking"
            size = len(questions[qi]["options"])
            for rank, option in enumerate(chosen):
                if ranking:
                    points[qi][option] += n * (size - rank)
                    if rank:
                        continue
                counts[qi][option] += n
                cell = by_district[qi][option]
                cell[district] = cell.get(district, 0) + n
                by_band[qi][option][band] += n

    districts = sorted(turnout_district)
    by_place = [
        [[by_district[qi][o].get(d, 0) for o in range(len(q["options"]))] for d in districts]
        for qi, q in enumerate(questions)
    ]
    by_age = [
        [[by_band[qi][o][b] for o in range(len(q["options"]))] for b in range(len(AGE_BANDS))]
        for qi, q in enumerate(questions)
    ]
    place_turnout, place_hidden = suppress([turnout_district[d] for d in districts], by_place, min_count)
    age_turnout, age_hidden = suppress(turnout_band, by_age, min_count)

    def shown(n: int, hidden: bool) -> int | None:
        return None if hidden else n

    return {
        "vote_id": vote.id,
        "total": total,
        "min_count": min_count,
        "turnout": {
            "districts": {d: shown(turnout_district[d], place_turnout[r]) for r, d in enumerate(districts)},
            "age_bands": [shown(n, age_turnout[b]) for b, n in enumerate(turnout_band)],
        },
        "questions": [
            {
                "text": q["text"],
                "kind": q["kind"],
                "options": [
                    {
                        "text": text,
                        "count": counts[qi][oi],
                        "points": points[qi][oi] if q["kind"] == "ranking" else None,
                        "districts": {
                            d: shown(by_place[qi][r][oi], place_hidden[qi][r][oi]) for r, d in enumerate(districts)
                        },
                        "age_bands": [shown(by_age[qi][b][oi], age_hidden[qi][b][oi]) for b in range(len(AGE_BANDS))],
                    }
                    for oi, text in enumerate(q["options"])
                ],
            }
            for qi, q in enumerate(questions)
        ],
    }


def suppress(turnout: list[int], cells: list[list[list[int]]], least: int) -> tuple[list[bool], list]:
    """Which cells of a breakdown to hide: `turnout[r]` (a district's or an age band's ballots) and
    `cells[q][r][o]` (question q's option o there). First every cell below `least`; then, because the
    totals are published (an option's count, the turnout), any row or column left with exactly one hidden cell
    would give it away by subtraction — so its smallest shown cell is hidden too, until none is left alone."""
    hidden_t = [n < least for n in turnout]
    hidden = [[[n < least for n in row] for row in table] for table in cells]

    def settle(line: list[tuple[int, list, int]]) -> bool:
        """One row or column as (value, mask, index) triples: hide its smallest shown cell if one is hidden."""
        if sum(mask[i] for _, mask, i in line) != 1:
            return False
        rest = [(n, mask, i) for n, mask, i in line if not mask[i]]
        if not rest:
            return False
        _, mask, i = min(rest, key=lambda t: t[0])
        mask[i] = True
        return True

    changed = True
    while changed:
        changed = False
        for table, mask in zip(cells, hidden, strict=True):
            for r, row in enumerate(table):
                line = [(turnout[r], hidden_t, r)] + [(n, mask[r], o) for o, n in enumerate(row)]
                changed |= settle(line)
            for o in range(len(table[0]) if table else 0):
                column = [row[o] for row in mask]
                line = [(table[r][o], column, r) for r in range(len(table))]
                if settle(line):
                    for r, row in enumerate(mask):
                        row[o] = column[r]
                    changed = True
        changed |= settle([(n, hidden_t, r) for r, n in enumerate(turnout)])
    return hidden_t, hidden


def min_count_of(db: Database, vote: Vote) -> int:
    return vote.min_count or rules(db).vote_min_count


def results(db: Database, vote_id: int) -> dict:
    """The vote's results: once closed, sealed and tallied once and kept; while open, only if the vote shows
    them live (`results_hidden` off)."""
    with db.session() as s:
        vote = get(s, vote_id)
        state = status_of(vote)
        if state != CLOSED:
            if vote.results_hidden:
                raise Conflict(N_("the results are published when the vote closes"), code="results_hidden")
            return tally(s, vote, min_count_of(db, vote)) | {"final": False}
        if vote.results is None:
            close(s, vote)
        return dict(vote.results) | {"final": True}


def close(session: Session, vote: Vote) -> None:
    """Seal what waits and keep the final tally (the close job, or the first look at the results)."""
    seal(session, vote.id)
    session.refresh(vote)
    vote.results = tally(session, vote, min_count_of(session.info["db"], vote))
    audit.record(session, "participation", "close", SUBJECT, vote.id, {"ballots": vote.ballots})


def close_due(db: Database) -> list[int]:
    """The job: close the votes whose time is up and that have no results yet."""
    done = []
    with db.session() as s:
        due = s.scalars(select(Vote).where(Vote.closes_at <= utcnow(), Vote.results.is_(None))).all()
        for vote in due:
            close(s, vote)
            done.append(vote.id)
    return done


def published_results(session: Session) -> Iterator[dict]:
    """Closed votes' results as rows of open data: an option's count in the whole city, in each district and
    each age band; cells below the vote's minimum are None (never who voted what)."""
    votes = session.scalars(select(Vote).where(Vote.results.is_not(None)).order_by(Vote.id))
    for vote in votes:
        result = vote.results
        for qi, q in enumerate(result["questions"]):
            for oi, option in enumerate(q["options"]):
                base = {
                    "vote_id": vote.id,
                    "vote": vote.title,
                    "question_no": qi + 1,
                    "question": q["text"],
                    "option_no": oi + 1,
                    "option": option["text"],
                }
                yield base | {
                    "key": f"{vote.id}-{qi + 1}-{oi + 1}--",
                    "district_code": "",
                    "age_band": "",
                    "count": option["count"],
                }
                for district, n in option["districts"].items():
                    key = f"{vote.id}-{qi + 1}-{oi + 1}-{district}-"
                    yield base | {"key": key, "district_code": district, "age_band": "", "count": n}
                for band, n in enumerate(option["age_bands"]):
                    key = f"{vote.id}-{qi + 1}-{oi + 1}--{band}"
                    yield base | {"key": key, "district_code": "", "age_band": AGE_BANDS[band], "count": n}
