"""Casting ballots in groups: the hot path of a city-wide vote (issue 15).

Every cast — the JSON API's, the page's, the CLI's or a test's — is handed to `CastQueue`, which gathers the
casts that arrive while the store's writer (core.writer) is busy and stores them together, as one writer job
in one transaction: who the callers are (API keys, accounts and verifications read for the whole group at
once), each cast's checks as `votes_service` words them, the voter roll's rows in one INSERT … ON CONFLICT DO
NOTHING (the unique keys still decide one person, one vote, across processes on PostgreSQL), the ballots in
the order of their random ids (so even the heap's order does not follow the roll's), the vote's counter, the
sealing of full batches into the hash chain, and the audit entries of the casts and their refusals. Each
caller waits on a future answered only after the commit.

If the group's job fails (the store refused a row, say), nothing of it is kept and each of its casts runs
again alone, so one bad cast answers with its own error and the others are stored. Refusals found on the way
(not verified, voted already, bad answers …) are answers, not failures: they are audited in the same
transaction."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from smartcity.core.auth import Identity, check, identity_of_user
from smartcity.core.context import Slot
from smartcity.core.db import Database, as_utc, utcnow
from smartcity.core.errors import Conflict, NotAuthenticated, NotFound, PermissionDenied, SmartCityError
from smartcity.core.i18n import N_
from smartcity.core.models import ApiKey, AuditEntry, Department, User
from smartcity.core.writer import writer
from smartcity.participation.verification import age_on, rules
from smartcity.participation.votes_chain import seal
from smartcity.participation.voting_models import Ballot, Verification, Vote, VoterRoll

SUBJECT = "participation.vote"


@dataclass(frozen=True)
class Receipt:
    vote_id: int
    code: str


@dataclass
class Cast:
    """One caller's cast: the vote, the answers as sent, and who — an identity already known, or an API key's
    digest to look up with the rest of the group."""

    vote_id: int
    answers: Any
    identity: Identity | None = None
    key_digest: str | None = None
    future: Future = field(default_factory=Future)


class CastQueue:
    """The casts waiting for the writer, and the one job at a time that takes them all (module docstring)."""

    def __init__(self, db: Database):
        self.db = db
        self._waiting: list[Cast] = []
        self._lock = threading.Lock()
        self._queued = False  # a job is in the writer's queue and has not yet taken the waiting casts

    def submit(self, cast: Cast) -> Future:
        with self._lock:
            self._waiting.append(cast)
            start, self._queued = not self._queued, True
        if start:
            try:
                self._schedule(None)
            except Exception as exc:  # the writer is closed (the server is stopping): no job will take them
                self._fail(None, exc)
        return cast.future

    def _fail(self, casts: list[Cast] | None, exc: BaseException) -> None:
        """Answer `casts` (None: every waiting cast, which no job has taken) with `exc`."""
        if casts is None:
            with self._lock:
                casts, self._waiting, self._queued = self._waiting, [], False
        for one in casts:
            if not one.future.done():
                one.future.set_exception(exc)

    def _schedule(self, casts: list[Cast] | None) -> None:
        """A writer job for `casts`, or (None) for whatever is waiting when the job runs."""
        taken: list[Cast] = casts or []

        def job(session: Session) -> list[tuple[bool, Any]]:
            nonlocal taken
            if not taken:  # the first run takes the group; a rerun (the writer's, after a failed commit) keeps it
                with self._lock:
                    taken, self._waiting, self._queued = self._waiting, [], False
            return store(session, taken)

        def answered(done: Future) -> None:
            try:
                outcomes = done.result()
            except Exception as exc:
                if not taken:  # the store failed before the job ran (no connection): the waiting casts hear of it
                    self._fail(None, exc)
                elif len(taken) > 1:  # the store refused something of the group: each cast again, alone
                    for one in taken:
                        try:
                            self._schedule([one])
                        except Exception as closed:
                            self._fail([one], closed)
                else:
                    self._fail(taken, exc)
                return
            for one, (ok, value) in zip(taken, outcomes, strict=True):
                if ok:
                    one.future.set_result(value)
                else:
                    one.future.set_exception(value)

        writer(self.db).submit(job).add_done_callback(answered)


CASTS: Slot[CastQueue] = Slot("participation.casts", lambda context: CastQueue(context.db))


def submit(db: Database, cast: Cast) -> Future:
    """Queue a cast; its future gets the receipt, or the refusal, once the group holding it has committed."""
    return CASTS.get(db).submit(cast)


# --- the group's job ---------------------------------------------------------------------------------

_KEYS = (
    select(
        ApiKey.key_hash,
        ApiKey.id,
        ApiKey.name,
        ApiKey.scope,
        ApiKey.revoked_at,
        User.id.label("user_id"),
        User.username,
        User.role,
        User.active,
        User.department_id,
        Department.code.label("department_code"),
        Department.district_code,
    )
    .outerjoin(User, User.id == ApiKey.user_id)
    .outerjoin(Department, Department.id == User.department_id)
    .where(ApiKey.key_hash.in_(bindparam("digests", expanding=True)))
)
_PEOPLE = select(
    Verification.user_id,
    Verification.identity_hash,
    Verification.district_code,
    Verification.neighbourhood_code,
    Verification.birth_year,
    Verification.home_lat,
    Verification.home_lon,
).where(Verification.user_id.in_(bindparam("users", expanding=True)))
_VOTES = (
    select(Vote.id, Vote.opens_at, Vote.closes_at, Vote.questions, Vote.target)
    .where(Vote.id.in_(bindparam("votes", expanding=True)))
    .order_by(Vote.id)  # on PostgreSQL the rows are locked in this order: two processes cannot deadlock on them
    .with_for_update()
)
_ROLL = {
    name: dialect.insert(VoterRoll).on_conflict_do_nothing().returning(VoterRoll.user_id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_ROLLED = select(VoterRoll.user_id).where(
    VoterRoll.vote_id == bindparam("vote_id"), VoterRoll.user_id.in_(bindparam("users", expanding=True))
)
_COUNT = (
    update(Vote)
    .where(Vote.id == bindparam("vote_id"))
    .values(received=Vote.received + bindparam("n"))
    .returning(Vote.received, Vote.ballots)
)


def _identities(session: Session, casts: Sequence[Cast]) -> dict[str, Identity | None]:
    """The callers behind the group's API keys (None: no such key, revoked, or its account disabled), as
    core.auth.resolve_identity makes them, in one read."""
    digests = sorted({c.key_digest for c in casts if c.key_digest})
    if not digests:
        return {}
    found: dict[str, Identity | None] = dict.fromkeys(digests)
    for row in session.connection().execute(_KEYS, {"digests": digests}):
        if row.revoked_at is not None or (row.user_id is not None and not row.active):
            continue
        key = SimpleNamespace(id=row.id, name=row.name, scope=row.scope)
        if row.user_id is None:
            found[row.key_hash] = Identity(via="key", key_id=row.id, key_name=row.name, key_scope=row.scope)
            continue
        dept = SimpleNamespace(code=row.department_code, district_code=row.district_code) if row.department_id else None
        user = SimpleNamespace(
            id=row.user_id, username=row.username, role=row.role, department_id=row.department_id, department=dept
        )
        found[row.key_hash] = identity_of_user(user, "key", key)
    return found


def admit(cast: Cast, keys: dict[str, Identity | None]) -> Identity:
    """The caller, held to the cast's permission (refusals here are not audited, as before any cast)."""
    identity = cast.identity if cast.key_digest is None else keys.get(cast.key_digest)
    if identity is None:
        raise NotAuthenticated("the API key is not valid or was revoked", code="invalid_api_key")
    check(identity, "participation.take_part")
    if identity.user_id is None:
        raise PermissionDenied(N_("only a person's account can take part"), code="person_only")
    if not -(2**63) <= cast.vote_id < 2**63:
        # As the store would refuse it (the platform answers 422 out_of_range), but before the group: one such
        # cast would otherwise make its whole group run again cast by cast.
        raise OverflowError("a vote id past 64 bits")
    cast.identity = identity
    return identity


def store(session: Session, casts: Sequence[Cast]) -> list[tuple[bool, Any]]:
    """Store a group of casts in the session's transaction; per cast (True, Receipt) or (False, its error)."""
    from smartcity.participation import votes_service as service

    conn = session.connection()
    now = utcnow()
    outcomes: list[tuple[bool, Any] | None] = [None] * len(casts)
    keys = _identities(session, casts)
    who: dict[int, Identity] = {}
    for i, cast in enumerate(casts):
        try:
            who[i] = admit(cast, keys)
        except (SmartCityError, OverflowError) as exc:
            outcomes[i] = (False, exc)
    if not who:
        return outcomes  # type: ignore[return-value]
    votes = {v.id: v for v in conn.execute(_VOTES, {"votes": sorted({casts[i].vote_id for i in who})})}
    people = {
        p.user_id: p for p in conn.execute(_PEOPLE, {"users": sorted({identity.user_id for identity in who.values()})})
    }
    refusals: list[tuple[int, SmartCityError]] = []
    # (vote, user) and (vote, identity) already taken in this group: a later cast of either is refused here,
    # so that the roll's answer (the user ids it let in) names exactly one cast each.
    taken_users: dict[tuple[int, int], int] = {}
    taken_people: set[tuple[int, str]] = set()
    admitted: dict[int, tuple[Any, Any, str]] = {}  # cast index -> (vote, person, canonical answers)
    for i, identity in who.items():
        cast = casts[i]
        try:
            vote = votes.get(cast.vote_id)
            if vote is None:
                raise NotFound(N_("no vote {id}"), params={"id": cast.vote_id})
            state = service.status_of(vote, now)
            if state == service.UPCOMING:
                raise Conflict(N_("this vote has not opened yet"), code="not_open")
            if state == service.CLOSED:
                raise Conflict(N_("this vote is closed"), code="closed")
            person = people.get(identity.user_id)
            why = service.ineligible(vote, person, now)
            if why:
                raise PermissionDenied(service.REFUSALS[why], code=why)
            canonical = service.canonical_answers(vote.questions, cast.answers)
            if (vote.id, identity.user_id) in taken_users:
                raise Conflict(N_("you have already voted in this vote"), code="already_voted")
            if (vote.id, person.identity_hash) in taken_people:
                raise Conflict(N_("this person has already voted from another account"), code="same_person")
        except SmartCityError as exc:
            refusals.append((i, exc))
            continue
        taken_users[(vote.id, identity.user_id)] = i
        taken_people.add((vote.id, person.identity_hash))
        admitted[i] = (vote, person, canonical)

    if admitted:
        dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
        roll = [
            {"vote_id": vote.id, "identity_hash": person.identity_hash, "user_id": person.user_id, "voted_at": now}
            for vote, person, _ in admitted.values()
        ]
        let_in = set(conn.execute(_ROLL[dialect], roll).scalars())
        ballots, counts = [], {}
        for i, (vote, person, canonical) in list(admitted.items()):
            if person.user_id not in let_in:  # another account of the person, or a cast of another process
                del admitted[i]
                rolled = conn.execute(_ROLLED, {"vote_id": vote.id, "users": [person.user_id]}).first()
                if rolled is not None:
                    refusals.append((i, Conflict(N_("you have already voted in this vote"), code="already_voted")))
                else:
                    code = "same_person"
                    refusals.append((i, Conflict(N_("this person has already voted from another account"), code=code)))
                continue
            code = service.new_receipt()
            ballots.append(
                {
                    "id": secrets.token_hex(16),
                    "vote_id": vote.id,
                    "answers": canonical,
                    "district_code": person.district_code or "",
                    "age_band": service.age_band(age_on(person.birth_year, as_utc(vote.opens_at))),
                    "receipt_hash": service.receipt_hash(code),
                }
            )
            counts[vote.id] = counts.get(vote.id, 0) + 1
            outcomes[i] = (True, Receipt(vote.id, code))
        if ballots:
            ballots.sort(key=lambda b: b["id"])  # the heap's order on PostgreSQL: not the roll's order
            conn.execute(insert(Ballot), ballots)
        batch = rules(session.info["db"]).vote_batch
        for vote_id, n in sorted(counts.items()):
            received, sealed = conn.execute(_COUNT, {"vote_id": vote_id, "n": n}).one()
            if received - sealed >= batch:
                seal(session, vote_id, locked=True)

    if admitted:
        conn.execute(insert(AuditEntry), [_entry(casts[i], "cast", now) for i in admitted])
    for i, exc in refusals:
        outcomes[i] = (False, exc)
    if refusals:
        entries = [_entry(casts[i], "cast_refused", now) | {"detail": {"reason": exc.code}} for i, exc in refusals]
        conn.execute(insert(AuditEntry), entries)
    return outcomes  # type: ignore[return-value]


def _entry(cast: Cast, action: str, now: datetime) -> dict:
    """An audit row as core.audit.record writes one (a cast's has no detail: NULL, not JSON null)."""
    assert cast.identity is not None
    identity = cast.identity
    return {
        "at": now,
        "actor_id": identity.user_id,
        "actor": identity.label,
        "action": action,
        "object_type": SUBJECT,
        "object_id": str(cast.vote_id),
    }
