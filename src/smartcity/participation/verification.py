"""One person, one vote: verifying the person behind an account before a first vote.

A verifier (the `Verifier` protocol; SMARTCITY_PARTICIPATION_VOTE_VERIFIER picks one) establishes a `Proof`:
the keyed hash of something only that person has (their phone, their resident id) and what a vote's target
reads (district, neighbourhood, birth year, home point). The hash is HMAC-SHA256 under the site's secret key,
so the tables never hold a phone number or a resident id, and two accounts of one person get the same hash —
the voter roll's unique (vote, identity hash) then refuses the second.

Built in:
  sms     `begin` sends a 6-digit one-time code through core.notify's SMS channel (kept as a keyed hash,
          valid `vote_code_minutes`, dead after `vote_code_attempts` wrong tries, used once); sends are limited
          per phone and per account an hour. The person states their birth year and district or home point.
  census  the residents register the city loads from CSV (`load_census`); `finish` looks the person up by
          resident id, or by name and birth date; district, neighbourhood and birth year come from the register.

Every refusal is audited, in a transaction of its own (the refused one rolls back)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
import secrets
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from smartcity.core import audit, notify
from smartcity.core.auth import Identity, check
from smartcity.core.context import context_of
from smartcity.core.db import Database, utcnow
from smartcity.core.errors import InvalidInput, PermissionDenied, SmartCityError, TooManyRequests
from smartcity.core.i18n import N_, translate
from smartcity.core.models import AuditEntry, District, Neighbourhood, User
from smartcity.participation.settings import ParticipationSettings
from smartcity.participation.voting_models import Resident, SmsCode, Verification

SUBJECT = "participation.verification"
NOT_VERIFIED = N_("verify that you are a resident before you vote")


@dataclass(frozen=True)
class Proof:
    """What a verifier established about the person behind an account."""

    identity_hash: str
    birth_year: int
    district_code: str | None
    neighbourhood_code: str | None = None
    home_lat: float | None = None
    home_lon: float | None = None


class Verifier(Protocol):
    """A way to verify a person. `two_steps`: `begin` sends something (a code) that `finish` checks; with one
    step, `begin` is not called. Both raise core.errors for a refusal; `db` is for what must outlive one
    (a wrong code's count)."""

    name: str
    two_steps: bool

    def begin(self, db: Database, identity: Identity, data: Mapping[str, Any]) -> dict: ...

    def finish(self, db: Database, identity: Identity, data: Mapping[str, Any]) -> Proof: ...


def rules(db: Database) -> ParticipationSettings:
    return context_of(db).settings_of(ParticipationSettings)


def keyed(db: Database, kind: str, value: str) -> str:
    """HMAC-SHA256 of `kind:value` under the site's secret key (hex): a person's identity hash."""
    key = context_of(db).settings.signing_key().encode()
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def phone_number(value: Any) -> str:
    """A phone number as digits, Korea's +82 written as the leading 0 (010-1234-5678 and +82 10 1234 5678 are one)."""
    digits = re.sub(r"[\s().-]", "", str(value or ""))
    if digits.startswith("+82"):
        digits = "0" + digits[3:]
    if not re.fullmatch(r"\+?\d{9,15}", digits):
        raise InvalidInput(N_("write a phone number of 9 to 15 digits"), code="bad_phone", details={"field": "phone"})
    return digits


def _year(value: Any) -> int:
    try:
        year = int(str(value).strip())
    except (TypeError, ValueError):
        year = 0
    if not 1900 <= year <= date.today().year:
        raise InvalidInput(N_("write your birth year as four digits"), code="bad_birth_year")
    return year


def _point(db: Database, data: Mapping[str, Any]) -> tuple[float, float, str, str | None] | None:
    """A stated home point (lat, lon) and its district and neighbourhood, or None when none was given."""
    lat, lon = data.get("lat"), data.get("lon")
    if lat in (None, "") and lon in (None, ""):
        return None
    if lat in (None, "") or lon in (None, ""):
        raise InvalidInput(N_("a map point needs both latitude and longitude"))
    from smartcity.core.geo import geo_index

    where = geo_index(db).locate(lat, lon)
    return where.lat, where.lon, where.district.code, where.neighbourhood.code if where.neighbourhood else None


def _area(db: Database, data: Mapping[str, Any]) -> tuple[str, str | None, float | None, float | None]:
    """District, neighbourhood and home point from a stated point, or else a chosen district (and neighbourhood)."""
    point = _point(db, data)
    if point:
        lat, lon, district, hood = point
        return district, hood, lat, lon
    district = str(data.get("district_code") or "").strip()
    hood = str(data.get("neighbourhood_code") or "").strip() or None
    with db.session() as s:
        if not district or s.scalar(select(District.id).where(District.code == district)) is None:
            raise InvalidInput(N_("choose your district or mark your home on the map"), code="no_district")
        if hood:
            found = s.scalar(select(Neighbourhood.district_code).where(Neighbourhood.code == hood))
            if found != district:
                raise InvalidInput(N_("that neighbourhood is not in your district"), code="bad_neighbourhood")
    return district, hood, None, None


class SmsVerifier:
    """A one-time code to the person's phone (see the module's docstring)."""

    name = "sms"
    two_steps = True

    def begin(self, db: Database, identity: Identity, data: Mapping[str, Any]) -> dict:
        phone = phone_number(data.get("phone"))
        birth_year = _year(data.get("birth_year"))
        district, hood, lat, lon = _area(db, data)
        settings, now = rules(db), utcnow()
        phone_hash = keyed(db, "phone", phone)
        hour = now - timedelta(hours=1)
        with db.session() as s:
            by_phone = s.scalar(select(func.count()).where(SmsCode.phone_hash == phone_hash, SmsCode.created_at > hour))
            by_account = s.scalar(
                select(func.count()).where(SmsCode.user_id == identity.user_id, SmsCode.created_at > hour)
            )
            if by_phone >= settings.vote_sends_per_phone or by_account >= settings.vote_sends_per_account:
                raise TooManyRequests(N_("too many codes were asked for: try again in an hour"), code="too_many_codes")
            code = f"{secrets.randbelow(1_000_000):06d}"
            claim = {"birth_year": birth_year, "district_code": district, "neighbourhood_code": hood}
            claim |= {"lat": lat, "lon": lon}
            s.add(
                SmsCode(
                    user_id=identity.user_id,
                    phone_hash=phone_hash,
                    code_hash=self._code_hash(db, identity.user_id, code),
                    claim=claim,
                    created_at=now,
                    expires_at=now + timedelta(minutes=settings.vote_code_minutes),
                    attempts=0,
                )
            )
            user = s.get(User, identity.user_id)
            language = (user.language if user else None) or context_of(db).profile.language
            text = N_("Your smartcity verification code is {code}. It is valid for {minutes} minutes.")
            notify.queue(
                s,
                "sms",
                phone,
                translate(language, text, code=code, minutes=settings.vote_code_minutes),
                topic=SUBJECT,
                user_id=identity.user_id,
            )
            audit.record(s, identity, "send_code", SUBJECT, identity.user_id)
        return {
            "method": self.name,
            "sent_to": f"{'*' * (len(phone) - 4)}{phone[-4:]}",
            "expires_in": 60 * settings.vote_code_minutes,
        }

    @staticmethod
    def _code_hash(db: Database, user_id: int | None, code: str) -> str:
        return keyed(db, "code", f"{user_id}:{code}")

    def finish(self, db: Database, identity: Identity, data: Mapping[str, Any]) -> Proof:
        code = str(data.get("code") or "").strip()
        settings, now = rules(db), utcnow()
        with db.session() as s:
            row = s.scalars(
                select(SmsCode).where(SmsCode.user_id == identity.user_id).order_by(SmsCode.id.desc()).limit(1)
            ).first()
            if row is None:
                raise InvalidInput(N_("ask for a code first"), code="no_code")
            if row.used_at is not None:
                raise InvalidInput(N_("this code was already used: ask for a new one"), code="code_used")
            if row.expires_at <= now or row.attempts >= settings.vote_code_attempts:
                raise InvalidInput(N_("this code has expired: ask for a new one"), code="code_expired")
            # The claim on a used code is spent with it: the UPDATE names it unused, so two finishes at once
            # (a replay racing the first) can not both pass.
            right = hmac.compare_digest(row.code_hash, self._code_hash(db, identity.user_id, code))
            if right:
                used = s.execute(
                    update(SmsCode).where(SmsCode.id == row.id, SmsCode.used_at.is_(None)).values(used_at=now)
                ).rowcount
                if used:
                    claim = dict(row.claim)
                    return Proof(
                        row.phone_hash,
                        claim["birth_year"],
                        claim["district_code"],
                        claim.get("neighbourhood_code"),
                        claim.get("lat"),
                        claim.get("lon"),
                    )
                raise InvalidInput(N_("this code was already used: ask for a new one"), code="code_used")
            left = settings.vote_code_attempts - row.attempts - 1
            s.execute(update(SmsCode).where(SmsCode.id == row.id).values(attempts=SmsCode.attempts + 1))
        if left <= 0:
            raise InvalidInput(N_("this code has expired: ask for a new one"), code="code_expired")
        raise InvalidInput(N_("the code is not right"), code="wrong_code", details={"attempts_left": left})


def _name(value: Any) -> str:
    return " ".join(unicodedata.normalize("NFC", str(value or "")).split())


def _birth_date(value: Any) -> str:
    text = str(value or "").strip()
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise InvalidInput(N_("write the birth date as YYYY-MM-DD"), code="bad_birth_date") from None


class CensusVerifier:
    """The residents register (see the module's docstring): one step."""

    name = "census"
    two_steps = False

    def begin(self, db: Database, identity: Identity, data: Mapping[str, Any]) -> dict:
        return {"method": self.name}

    def finish(self, db: Database, identity: Identity, data: Mapping[str, Any]) -> Proof:
        settings, hour = rules(db), utcnow() - timedelta(hours=1)
        with db.session() as s:
            tries = s.scalar(
                select(func.count()).where(
                    AuditEntry.actor_id == identity.user_id,
                    AuditEntry.object_type == SUBJECT,
                    AuditEntry.action.in_(("verify", "verify_refused")),
                    AuditEntry.at > hour,
                )
            )
        if tries >= settings.vote_sends_per_account:
            raise TooManyRequests(N_("too many verification attempts: try again in an hour"), code="too_many_tries")
        resident = str(data.get("resident_id") or "").strip()
        if resident:
            column, value = Resident.resident_hash, keyed(db, "resident", resident)
        elif data.get("name") and data.get("birth_date"):
            value = keyed(db, "person", f"{_name(data['name'])}|{_birth_date(data['birth_date'])}")
            column = Resident.name_birth_hash
        else:
            raise InvalidInput(N_("give your resident number, or your name and birth date"), code="no_resident")
        with db.session() as s:
            found = s.scalars(select(Resident).where(column == value).limit(1)).first()
            if found is None:
                raise PermissionDenied(N_("you are not in the residents register"), code="not_resident")
            proof = Proof(found.identity_hash, found.birth_year, found.district_code, found.neighbourhood_code)
        point = _point(db, data)
        if point:
            if point[2] != proof.district_code:
                raise InvalidInput(N_("your home point is not in your registered district"), code="bad_home")
            proof = Proof(
                proof.identity_hash, proof.birth_year, proof.district_code, proof.neighbourhood_code, *point[:2]
            )
        return proof


VERIFIERS: dict[str, type] = {"sms": SmsVerifier, "census": CensusVerifier}


def verifier_of(db: Database) -> Verifier:
    """The city's verifier: a built-in by name, or a class by its 'package.module:Class' path."""
    chosen = rules(db).vote_verifier
    if chosen in VERIFIERS:
        return VERIFIERS[chosen]()
    from smartcity.core.module import resolve

    return resolve(chosen)()


def _person(identity: Identity) -> int:
    check(identity, "participation.take_part")
    if identity.user_id is None:
        raise PermissionDenied(N_("only a person's account can take part"), code="person_only")
    return identity.user_id


def refused(db: Database, identity: Identity, action: str, subject: str, object_id: Any, error: SmartCityError) -> None:
    """Audit a refusal in a transaction of its own (the refused one rolls back): who, on what, and why."""
    with db.session() as s:
        audit.record(s, identity, action, subject, object_id, {"reason": error.code})


def begin(db: Database, identity: Identity, data: Mapping[str, Any]) -> dict:
    """The first step of verification (sends the code, for sms)."""
    person = _person(identity)
    verifier = verifier_of(db)
    try:
        return verifier.begin(db, identity, data)
    except SmartCityError as exc:
        refused(db, identity, "verify_refused", SUBJECT, person, exc)
        raise


def finish(db: Database, identity: Identity, data: Mapping[str, Any]) -> Verification:
    """The last step: on success the account is verified (again: the new proof replaces the old)."""
    person = _person(identity)
    verifier = verifier_of(db)
    try:
        proof = verifier.finish(db, identity, data)
    except SmartCityError as exc:
        refused(db, identity, "verify_refused", SUBJECT, person, exc)
        raise
    with db.session() as s:
        s.execute(delete(Verification).where(Verification.user_id == person))
        row = Verification(
            user_id=person,
            method=verifier.name,
            identity_hash=proof.identity_hash,
            district_code=proof.district_code,
            neighbourhood_code=proof.neighbourhood_code,
            birth_year=proof.birth_year,
            home_lat=proof.home_lat,
            home_lon=proof.home_lon,
            verified_at=utcnow(),
        )
        s.add(row)
        s.flush()
        audit.record(s, identity, "verify", SUBJECT, person, {"method": verifier.name})
        s.expunge(row)
    return row


def verified(session: Session, user_id: int | None) -> Verification | None:
    if user_id is None:
        return None
    return session.scalars(select(Verification).where(Verification.user_id == user_id)).first()


def voter_key(session: Session, identity: Identity) -> str:
    """The verified person's identity hash (one per person, whichever account): the key of one-per-person rows."""
    found = verified(session, identity.user_id)
    if found is None:
        raise PermissionDenied(NOT_VERIFIED, code="not_verified")
    return found.identity_hash


# --- the residents register -------------------------------------------------------------------------


@dataclass
class CensusLoad:
    loaded: int = 0
    skipped: list[tuple[int, str]] | None = None


def _census_rows(db: Database, text: str, known: set[str]) -> Iterator[tuple[int, dict | str]]:
    for line, row in enumerate(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))), start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        resident, name, born = row.get("resident_id"), _name(row.get("name")), row.get("birth_date")
        district = row.get("district") or row.get("district_code") or ""
        if district not in known:
            yield line, f"unknown district {district!r}"
            continue
        try:
            birth_date = _birth_date(born) if born else None
            year = _year(row.get("birth_year") or (birth_date or "")[:4])
        except InvalidInput as exc:
            yield line, exc.message
            continue
        by_name = keyed(db, "person", f"{name}|{birth_date}") if name and birth_date else None
        by_id = keyed(db, "resident", resident) if resident else None
        if not (by_id or by_name):
            yield line, "neither a resident id nor a name and birth date"
            continue
        identity = keyed(db, "resident", resident) if resident else by_name
        yield (
            line,
            {
                "identity_hash": identity,
                "resident_hash": by_id,
                "name_birth_hash": by_name,
                "district_code": district,
                "neighbourhood_code": row.get("neighbourhood") or row.get("neighbourhood_code") or None,
                "birth_year": year,
            },
        )


def load_census(db: Database, text: str, actor: Any = "cli") -> CensusLoad:
    """Replace the residents register with a CSV's rows (resident_id, or name and birth_date; district;
    neighbourhood; birth_year): only keyed hashes and the coarse fields are kept. Bad rows are skipped, told."""
    result = CensusLoad(skipped=[])
    with db.session() as s:
        known = set(s.scalars(select(District.code)))
        s.execute(delete(Resident))
        batch: list[dict] = []
        for line, row in _census_rows(db, text, known):
            if isinstance(row, str):
                result.skipped.append((line, row))
                continue
            batch.append(row)
            if len(batch) >= 5000:
                s.execute(insert(Resident), batch)
                result.loaded += len(batch)
                batch = []
        if batch:
            s.execute(insert(Resident), batch)
            result.loaded += len(batch)
        audit.record(s, actor, "load_census", SUBJECT, None, {"rows": result.loaded, "skipped": len(result.skipped)})
    return result


def age_on(birth_year: int, when: datetime) -> int:
    """Age in the vote's year (Korean public bodies count by year of birth for votes of this kind)."""
    return when.year - birth_year
