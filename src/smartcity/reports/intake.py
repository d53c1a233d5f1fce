"""Intake: validating a new report (every problem at once), storing it with its photos, fetching media."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import h3
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import ANONYMOUS, Identity
from smartcity.core.errors import Conflict, InvalidInput, NotAuthenticated, PermissionDenied, TooLarge
from smartcity.core.events import publish
from smartcity.core.geo import geo_index
from smartcity.core.models import User
from smartcity.reports import photos as photo_files
from smartcity.reports.campaigns import get_campaign
from smartcity.reports.common import (
    H3_RES,
    MAX_ADDRESS,
    MAX_DESCRIPTION,
    MAX_TITLE,
    SOURCES,
    _check_media_urls,
    _citizen,
    _clean_text,
    _now,
    _raise_problems,
    context,
    uploads_root,
)
from smartcity.reports.models import Campaign, Category, Report, ReportContact, ReportPhoto, grid_cell
from smartcity.reports.notifications import EMAIL, _notify_reporter, _notify_subscribers, feedback_token
from smartcity.reports.photos import Upload
from smartcity.reports.routing import route_for
from smartcity.reports.settings import ReportsSettings
from smartcity.reports.taxonomy import get_category, validate_attributes
from smartcity.reports.views import Contact, event_data, get_report
from smartcity.reports.workflow import _timeline
from smartcity.settings import Settings


@dataclass
class NewReport:
    """What a citizen (or a partner system) submits."""

    category: str
    lat: Any
    lon: Any
    title: str
    description: str = ""
    address_string: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    photos: list[Upload] = field(default_factory=list)
    contact: Contact | None = None
    show_name: bool = False
    idempotency_key: str | None = None
    source: str = "web"
    language: str | None = None  # one of the city's languages; else (or None) the city's own
    campaign: str | None = None
    external_id: str | None = None
    media_urls: list[str] = field(default_factory=list)  # a partner's links to its photos, kept as given
    # A partner system cannot correct a field as a person at a form can: with lenient=True a malformed
    # optional field (contact details, a media_url) is dropped with a notice instead of refusing the report.
    lenient: bool = False
    # When the request was first made, for a partner moving its history over: kept only when the caller
    # holds reports.import (the adapter checks), else the report is timed on arrival.
    requested_at: datetime | None = None


@dataclass
class CreatedReport:
    report: Report
    feedback_token: str  # the secret that lets the reporter confirm, reopen and rate without an account
    repeated: bool = False  # True: the idempotency key was seen before; nothing new was stored
    notices: list[dict] = field(default_factory=list)  # optional fields dropped (lenient): {field, problem}


# Short service numbers (120, 02-120) and national formats ((212) 555-1234) are real numbers: kept as given.
PHONE = re.compile(r"^\+?[0-9(][0-9 ().\-/]{0,48}[0-9]$")


def _check_contact(contact: Contact | None, problems: list[dict], notices: list[dict] | None = None) -> Contact | None:
    """Contact details as given; a malformed one is a problem, or with `notices` (lenient) dropped and noted."""
    if contact is None:
        return None
    found: list[dict] = []
    name = _clean_text(contact.name, "contact.name", 200, found) or None
    if found:
        name = None
    email = (contact.email or "").strip() or None
    phone = (contact.phone or "").strip() or None
    if email and not EMAIL.match(email):
        found.append({"field": "contact.email", "code": "invalid_email", "problem": "is not an email address"})
        email = None
    if phone and not (PHONE.match(phone) and sum(c.isdigit() for c in phone) >= 3):
        found.append({"field": "contact.phone", "code": "invalid_phone", "problem": "is not a phone number"})
        phone = None
    (notices if notices is not None else problems).extend(found)
    if not (name or email or phone):
        return None
    return Contact(name, email, phone)


def _idem_key(identity: Identity, key: str) -> str:
    # Keys are namespaced by caller so that one client cannot fetch another's report by guessing a key.
    owner = f"u{identity.user_id}" if identity.user_id else f"k{identity.key_id}" if identity.key_id else "anon"
    return f"{owner}:{key}"[:200]


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (bytes, bytearray)):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def submission_fingerprint(new: NewReport) -> str:
    """What makes two submissions the same one, for idempotency: every field of the report as submitted
    (photos by their content), not how it was sent (its key, language or channel)."""
    fields = _canonical(new)
    for name in ("idempotency_key", "language", "source"):
        fields.pop(name, None)
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _details(exc: InvalidInput, field_name: str) -> list[dict]:
    """A refusal as field problems: its own details, else one problem for `field_name`."""
    if isinstance(exc.details, list) and exc.details and all(isinstance(d, dict) for d in exc.details):
        return [{"field": field_name, **d} for d in exc.details]
    return [{"field": field_name, "code": exc.code, "problem": exc.message}]


def _gather(problems: list[dict], refusals: list[InvalidInput], field_name: str, check: Callable[[], Any]) -> Any:
    """`check()`'s result, or None with its refusal added to the problems."""
    try:
        return check()
    except InvalidInput as exc:
        refusals.append(exc)
        problems.extend(_details(exc, field_name))
        return None


def _category_of(session: Session, new: NewReport) -> tuple[Category, Campaign | None]:
    """The report's category, and its campaign if filed in one; refused if it may not be filed there."""
    category = get_category(session, new.category)
    campaign = None
    if new.campaign:
        campaign = get_campaign(session, new.campaign)
        now = _now()
        if not campaign.starts_at <= now <= campaign.ends_at:
            raise InvalidInput("this campaign is not running", code="campaign_closed")
        if category.campaign_id != campaign.id:
            raise InvalidInput("the category is not one of this campaign's", code="unknown_category")
    elif category.campaign_id is not None:
        raise InvalidInput("this category belongs to a campaign; report it there", code="unknown_category")
    if not category.active:
        raise InvalidInput(f"the category {category.code!r} is no longer in use", code="unknown_category")
    return category, campaign


def create_report(session: Session, identity: Identity, new: NewReport) -> CreatedReport:
    """File a report: validate everything first, then store report, contact, photos and timeline in the
    caller's transaction; photo files are removed again if it rolls back. A repeated idempotency key
    returns the first report and stores nothing."""
    ctx = context(session)
    settings, own = ctx.settings, ctx.settings_of(ReportsSettings)
    if not identity.authenticated and not own.allow_anonymous:
        raise NotAuthenticated("sign in to report a problem")
    if identity.role is not None and not identity.can("reports.create"):
        raise PermissionDenied("you may not file reports")
    if new.idempotency_key:
        key = _idem_key(identity, str(new.idempotency_key).strip())
        fingerprint = submission_fingerprint(new)
        existing = session.scalar(select(Report).where(Report.idempotency_key == key))
        if existing is not None:
            if existing.idempotency_fingerprint not in (None, fingerprint):
                raise Conflict(
                    "this Idempotency-Key was used before with a different request; use a new key for a new report",
                    code="idempotency_key_reused",
                )
            return CreatedReport(existing, feedback_token(existing, settings), repeated=True)
    else:
        key = fingerprint = None

    # Every problem is gathered and reported at once (one error, one detail per field problem), so a form
    # can mark all its fields after one submission and needs no copy of these rules.
    problems: list[dict] = []
    refusals: list[InvalidInput] = []
    category, campaign = _gather(problems, refusals, "category", lambda: _category_of(session, new)) or (None, None)
    where = _gather(problems, refusals, "lat", lambda: geo_index(session.info["db"]).locate(new.lat, new.lon))
    title = _clean_text(new.title, "title", MAX_TITLE, problems, required=True)
    description = _clean_text(new.description, "description", MAX_DESCRIPTION, problems)
    address = _clean_text(new.address_string, "address_string", MAX_ADDRESS, problems) or None
    notices: list[dict] | None = [] if new.lenient else None
    contact = _check_contact(new.contact, problems, notices)
    media_urls = _check_media_urls(new.media_urls, problems, notices)
    source = new.source if new.source in SOURCES else "api"
    profile = ctx.profile
    language = new.language if new.language in profile.languages else profile.language
    if len(new.photos) > own.max_photos:
        problems.append({"field": "photos", "code": "too_many_photos", "problem": f"at most {own.max_photos} photos"})
    attributes = None
    if category is not None:
        attributes = _gather(problems, refusals, "attributes", lambda: validate_attributes(category, new.attributes))
    if len(refusals) == 1 and len(problems) == len(_details(refusals[0], "")):
        raise refusals[0]  # one refusal alone keeps its own kind and code (e.g. OutsideCity)
    _raise_problems(problems)
    processed = [photo_files.process(p, own.max_photo_bytes) for p in new.photos]

    unit = route_for(session, category, where.district.code)
    now = _now()
    if new.requested_at is not None:
        if not may_import(identity):
            raise PermissionDenied("only an import key may give a request's original time", code="no_import")
        if new.requested_at > now:
            raise InvalidInput("requested_datetime is in the future", code="invalid_date")
        now = new.requested_at
    public_name = None
    if new.show_name:
        public_name = contact.name if contact and contact.name else identity.username if identity.user_id else None
        if identity.user_id:
            user = session.get(User, identity.user_id)
            public_name = (contact.name if contact and contact.name else None) or user.display_name or user.username
    report = placed_report(
        category,
        where,
        title=title,
        description=description,
        address_string=address,
        attributes=attributes,
        unit_id=unit.id,
        reporter_id=identity.user_id,
        public_name=public_name,
        language=language,
        source=source,
        campaign_id=campaign.id if campaign else None,
        idempotency_key=key,
        idempotency_fingerprint=fingerprint,
        external_id=(str(new.external_id)[:100] if new.external_id else None),
        created_at=now,
        updated_at=now,
        due_at=now + timedelta(days=category.service_days),
        photo_count=len(processed),
        media_urls=media_urls or None,
        media_fetch="pending" if media_urls and own.fetch_media_urls else None,
    )
    session.add(report)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(
            "this report is being submitted already; try again in a moment", code="idempotency_conflict"
        ) from None
    if contact:
        session.add(ReportContact(report_id=report.id, name=contact.name, email=contact.email, phone=contact.phone))
    _store_photos(session, settings, report.id, processed)
    _timeline(
        session, report, identity, "created", None, "open", "", public=True, actor_label=_citizen(identity), at=now
    )
    audit.record(
        session,
        identity,
        "create",
        "report",
        report.id,
        {"category": category.code, "unit": unit.code, "source": source},
    )
    publish(session, "report.created", event_data(report))
    token = feedback_token(report, settings)
    _notify_reporter(session, report, "received", token=token)
    _notify_subscribers(session, report)
    return CreatedReport(report, token, notices=notices or [])


def _store_photos(
    session: Session, settings: Settings, report_id: int, processed: list, start: int = 0, stage: str = "before"
) -> None:
    """Write processed photos' files (removed again if the transaction rolls back) and their rows."""
    if not processed:
        return
    batch = photo_files.FileBatch(session, uploads_root(settings))
    try:
        for pos, p in enumerate(processed, start):
            name = secrets.token_hex(16)
            path = batch.write(p.image, ".jpg", name)
            thumb = batch.write(p.thumb, ".thumb.jpg", name)
            session.add(
                ReportPhoto(
                    report_id=report_id,
                    path=path,
                    thumb_path=thumb,
                    content_type="image/jpeg",
                    width=p.width,
                    height=p.height,
                    size=len(p.image),
                    position=pos,
                    stage=stage,
                )
            )
    except BaseException:
        batch.remove()
        raise


def fetch_media(db, settings: Settings, *, limit: int = 20) -> int:
    """The background fetch of partners' media_url links (SMARTCITY_REPORTS_FETCH_MEDIA_URLS): each pending
    report's links become its photos where they are public images within the limits; a refused link stays a
    link, with an internal note saying why. The downloads happen outside any transaction. Returns the
    number of reports handled."""
    own = settings.of(ReportsSettings)
    allow = [ipaddress.ip_network(n.strip(), strict=False) for n in own.fetch_media_allow.split(",") if n.strip()]
    with db.session() as s:
        pending = list(
            s.execute(
                select(Report.id, Report.media_urls)
                .where(Report.media_fetch == "pending")
                .order_by(Report.id)
                .limit(limit)
            )
        )
    for report_id, urls in pending:
        got, refused = [], []
        for url in urls or []:
            try:
                upload = photo_files.fetch(url, own.max_photo_bytes, allow=allow)
                got.append(photo_files.process(upload, own.max_photo_bytes))
            except photo_files.FetchRefused as exc:
                refused.append((url, str(exc)))
            except (InvalidInput, TooLarge) as exc:  # not an image after all, or too many pixels
                refused.append((url, exc.message))
        with db.session() as s:
            report = get_report(s, report_id, lock=True)
            if report.media_fetch != "pending":
                continue  # another process did it meanwhile
            room = max(own.max_photos - report.photo_count, 0)
            if len(got) > room:
                refused.append(("", f"{len(got) - room} fetched photo(s) over the limit of {own.max_photos} not kept"))
                got = got[:room]
            _store_photos(s, settings, report.id, got, start=report.photo_count)
            report.photo_count += len(got)
            report.media_fetch = "refused" if refused else "done"
            for url, why in refused:
                _timeline(
                    s,
                    report,
                    ANONYMOUS,
                    "note",
                    None,
                    None,
                    f"media_url {url} not fetched: {why}",
                    public=False,
                    actor_label="job:media_url",
                )
            audit.record(
                s,
                "job:media_url",
                "fetch_media",
                "report",
                report.id,
                {"photos": len(got), "refused": [u for u, _ in refused]},
            )
    return len(pending)


IMPORT_KEY_SCOPE = "open311:import"  # an Open311 key that may also give requested_datetime


def may_import(identity: Identity) -> bool:
    """Whether the caller may store requests with their original times: administrators (reports.import)
    and partner systems whose Open311 key was issued for importing (scope IMPORT_KEY_SCOPE)."""
    return identity.key_scope == IMPORT_KEY_SCOPE or identity.can("reports.import")


def placed_report(category: Category, where, **fields) -> Report:
    """A new, open report of `category` at a located place (`geo_index().locate`), with what the place
    decides filled in: position, district, neighbourhood and the search cells."""
    return Report(
        category_id=category.id,
        category_code=category.code,
        status="open",
        lat=where.lat,
        lon=where.lon,
        district_code=where.district.code,
        neighbourhood_code=where.neighbourhood.code if where.neighbourhood else None,
        h3_cell=h3.latlng_to_cell(where.lat, where.lon, H3_RES),
        grid_cell=grid_cell(where.lat, where.lon),
        **fields,
    )
