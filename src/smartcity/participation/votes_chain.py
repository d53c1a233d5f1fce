"""A vote's hash chain: sealing waiting ballots into it and recomputing it (`smartcity participation
verify-chain`).

hash_n = SHA-256(hash_{n-1} ‖ "position|receipt hash|answers|district|age band"), starting from
SHA-256("smartcity-vote:<id>"). Ballots wait with random ids until a batch is there; `seal` appends the batch
in the order of those ids, under the vote row's lock (one writer per vote on both stores)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from smartcity.core.errors import NotFound
from smartcity.core.i18n import N_
from smartcity.participation.voting_models import Ballot, Vote


def genesis(vote_id: int) -> bytes:
    return hashlib.sha256(f"smartcity-vote:{vote_id}".encode()).digest()


def link(previous: bytes, position: int, receipt: str, answers: str, district: str, band: int) -> bytes:
    return hashlib.sha256(previous + f"{position}|{receipt}|{answers}|{district}|{band}".encode()).digest()


def seal(session: Session, vote_id: int, locked: bool = False) -> int:
    """Append the vote's waiting ballots to its chain, in the order of their random ids; how many."""
    if not locked:  # take the vote row's lock, as a cast does
        session.execute(update(Vote).where(Vote.id == vote_id).values(ballots=Vote.ballots))
    head, count = session.execute(select(Vote.chain_head, Vote.ballots).where(Vote.id == vote_id)).one()
    waiting = session.execute(
        select(Ballot.id, Ballot.receipt_hash, Ballot.answers, Ballot.district_code, Ballot.age_band)
        .where(Ballot.vote_id == vote_id, Ballot.position.is_(None))
        .order_by(Ballot.id)
    ).all()
    if not waiting:
        return 0
    previous = bytes.fromhex(head) if head else genesis(vote_id)
    changes = []
    for ballot_id, receipt, answers, district, band in waiting:
        count += 1
        previous = link(previous, count, receipt, answers, district, band)
        changes.append({"id": ballot_id, "position": count, "chain_hash": previous.hex()})
    session.execute(update(Ballot), changes)
    session.execute(update(Vote).where(Vote.id == vote_id).values(ballots=count, chain_head=previous.hex()))
    return len(waiting)


@dataclass
class ChainCheck:
    """The result of recomputing a vote's chain: intact or where it first breaks."""

    vote_id: int
    ok: bool
    ballots: int
    head: str
    waiting: int = 0
    broken_at: int | None = None


# The store writes each link's text (as `link` spells it): one string per row reaches Python, not five.
CHAIN_SQL = (
    "SELECT position, CAST(position AS TEXT) || '|' || receipt_hash || '|' || answers || '|' || district_code "
    "|| '|' || CAST(age_band AS TEXT), chain_hash FROM participation_ballots "
    "WHERE vote_id = ? AND position IS NOT NULL ORDER BY position"
)


def _chain_rows(session: Session, vote_id: int) -> Iterator[tuple]:
    """The sealed ballots in chain order, straight from the driver's cursor: a city's 1.7 million rows pass
    through here, and SQLAlchemy's row objects would double the time of the check. PostgreSQL streams them
    through a server-side cursor; SQLite's cursor steps through them as they are read."""
    connection = session.connection()
    raw = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        cursor = raw.cursor(name=f"chain_{vote_id}_{secrets.token_hex(4)}")
        cursor.itersize = 50_000
        cursor.execute(CHAIN_SQL.replace("?", "%s"), (vote_id,))
    else:
        cursor = raw.cursor()
        cursor.execute(CHAIN_SQL, (vote_id,))
    try:
        while batch := cursor.fetchmany(50_000):
            yield from batch
    finally:
        cursor.close()


def verify_chain(session: Session, vote_id: int) -> ChainCheck:
    """Recompute every link of the vote's chain from its first ballot; compare each stored hash, the count and
    the head the vote row keeps."""
    vote = session.get(Vote, vote_id)
    if vote is None:
        raise NotFound(N_("no vote {id}"), params={"id": vote_id})
    previous, expected, sha = genesis(vote_id), 0, hashlib.sha256
    broken = None
    for position, text, stored in _chain_rows(session, vote_id):
        expected += 1
        previous = sha(previous + text.encode()).digest()
        if position != expected or previous.hex() != stored:
            broken = expected
            break
    waiting = session.scalar(select(func.count()).where(Ballot.vote_id == vote_id, Ballot.position.is_(None))) or 0
    head = previous.hex() if expected else ""
    if broken is None and (expected != vote.ballots or head != vote.chain_head):
        broken = expected + 1 if expected < vote.ballots else expected
    return ChainCheck(vote_id, broken is None, vote.ballots, vote.chain_head, waiting, broken)
