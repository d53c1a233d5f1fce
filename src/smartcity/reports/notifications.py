"""Telling people: the reporter's messages, area subscriptions and their unsubscribe tokens."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, object_session

from smartcity.core import audit, notify, push
from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.geo import geo_index
from smartcity.core.i18n import N_, localized, translate
from smartcity.core.models import User
from smartcity.reports.common import _loc, parse_bbox, profile_of, settings_of, status_name
from smartcity.reports.models import Report, ReportContact, Subscription
from smartcity.reports.settings import public_url
from smartcity.settings import Settings

EMAIL = re.compile(r"^[^@\s<>]{1,64}@[^@\s<>]{1,190}\.[^@\s<>]{2,}$")


def feedback_token(report: Report, settings: Settings | None = None) -> str:
    """The secret link token of a report's reporter (derived, never stored); `settings` default to those of
    the store the report was read from."""
    if settings is None:
        owner = object_session(report)
        if owner is None:
            raise ValueError("a detached report needs the settings to sign its token with")
        settings = settings_of(owner)
    key = settings.signing_key().encode()
    return hmac.new(key, f"report-feedback:{report.id}".encode(), hashlib.sha256).hexdigest()[:32]


# (subject, body) of each message, English msgids of the catalogues; a translation writes whole sentences and
# Korean particles as pairs (이(가), (으)로…), settled once the values are in (core.i18n.translate).
MESSAGES = {
    "received": (
        N_("[{city}] Report #{id} received"),
        N_("Your report '{title}' was received and sent to {unit}. Expected by {due}.\n{url}"),
    ),
    "status": (
        N_("[{city}] Report #{id}: {status}"),
        N_("The status of your report '{title}' is now '{status}'.\n{text}\n{url}"),
    ),
    "update": (N_("[{city}] News on report #{id}"), N_("An update on your report '{title}':\n{text}\n{url}")),
    "duplicate": (
        N_("[{city}] Report #{id}: duplicate"),
        N_("Your report '{title}' is the same problem as report #{parent} and is handled with it.\n{text}\n{url}"),
    ),
    "fixed": (
        N_("[{city}] Report #{id}: fixed"),
        N_("Your report '{title}' has been fixed.\n{text}\nPlease confirm and rate the work: {feedback_url}"),
    ),
    "new_in_area": (
        N_("[{city}] New report: {title}"),
        N_("A new report in your area: {category} — {title}\n{url}\nUnsubscribe: {unsubscribe_url}"),
    ),
}


def _message(kind: str, language: str, **values) -> tuple[str, str]:
    subject, body = MESSAGES[kind]
    return translate(language, subject, **values), re.sub(r"\n{2,}", "\n", translate(language, body, **values))


def _base_url(session: Session) -> str:
    return public_url(settings_of(session))


def _notify_reporter(
    session: Session,
    report: Report,
    kind: str,
    *,
    text: str = "",
    token: str | None = None,
    parent: Report | None = None,
) -> int:
    """Queue a message to the reporter (email if given, sms if a phone, and a push message to each phone a
    signed-in reporter turned notifications on in), in the report's language."""
    if kind == "status" and report.status == "fixed":
        kind = "fixed"
    contact = session.get(ReportContact, report.id)
    email = contact.email if contact else None
    phone = contact.phone if contact else None
    if not (email or phone) and report.reporter_id:
        user = session.get(User, report.reporter_id)
        email, phone = (user.email, user.phone) if user else (None, None)
    if not (email or phone or push.has_subscription(session, report.reporter_id)):
        return 0
    lang = report.language
    base = _base_url(session)
    token = token or feedback_token(report, settings_of(session))
    profile = profile_of(session)
    subject, body = _message(
        kind,
        lang,
        city=profile.name(lang),
        id=report.id,
        title=report.title,
        unit=localized(report.unit, "name", lang, profile.language),
        due=report.due_at.astimezone(UTC).strftime("%Y-%m-%d"),
        status=status_name(report.status, lang),
        text=text,
        url=f"{base}/reports/{report.id}",
        parent=parent.id if parent else "",
        feedback_url=f"{base}/reports/{report.id}?token={token}",
    )
    ref = f"report:{report.id}"
    sent = 0
    if email:
        notify.queue(
            session, "email", email, body, subject=subject, topic=f"report.{kind}", ref=ref, user_id=report.reporter_id
        )
        sent += 1
    if phone:
        notify.queue(
            session, "sms", phone, body, subject=subject, topic=f"report.{kind}", ref=ref, user_id=report.reporter_id
        )
        sent += 1
    if report.reporter_id:
        # The notification opens the report's page; its links (the secret feedback link too) stay in the mail.
        text = "\n".join(line for line in body.splitlines() if base not in line)
        sent += notify.queue_push(
            session,
            report.reporter_id,
            subject,
            text,
            url=f"{base}/reports/{report.id}",
            topic=f"report.{kind}",
            ref=ref,
            replaces=f"report-{report.id}",
        )
    return sent


def subscribe(
    session: Session,
    email: str,
    *,
    district: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    language: str | None = None,
    user_id: int | None = None,
) -> Subscription:
    """Subscribe an email address to new reports in a district or a box (west, south, east, north); its
    messages in `language` if the city speaks it, else in the city's language."""
    email = (email or "").strip()
    if not EMAIL.match(email):
        raise InvalidInput("that is not an email address", code="invalid_email")
    if (district is None) == (bbox is None):
        raise InvalidInput("give either a district or a box", code="invalid_area")
    profile = profile_of(session)
    sub = Subscription(
        email=email,
        language=language if language in profile.languages else profile.language,
        token=secrets.token_urlsafe(32),
        user_id=user_id,
    )
    if district is not None:
        if district not in {a.code for a in geo_index(session.info["db"]).districts}:
            raise InvalidInput(f"unknown district {district!r}", code="unknown_district")
        sub.district_code = district
    else:
        sub.west, sub.south, sub.east, sub.north = parse_bbox(bbox)
    session.add(sub)
    session.flush()
    audit.record(
        session, "citizen" if user_id is None else f"user:{user_id}", "subscribe", "report_subscription", sub.id
    )
    return sub


def unsubscribe(session: Session, token: str) -> None:
    """End a subscription by its secret token (only ever from a POST: mail scanners follow links)."""
    sub = session.scalar(select(Subscription).where(Subscription.token == str(token)))
    if sub is None:
        raise NotFound("no such subscription")
    audit.record(
        session,
        "citizen" if sub.user_id is None else f"user:{sub.user_id}",
        "unsubscribe",
        "report_subscription",
        sub.id,
    )
    session.delete(sub)


def unsubscribe_headers(base: str, token: str) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe: the mail client POSTs "List-Unsubscribe=One-Click" to the API's
    address; a GET there only redirects to the confirm page."""
    return {
        "List-Unsubscribe": f"<{base}/api/reports/subscriptions/{token}/delete>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _notify_subscribers(session: Session, report: Report) -> int:
    subs = session.scalars(
        select(Subscription).where(
            or_(
                Subscription.district_code == report.district_code,
                and_(
                    Subscription.district_code.is_(None),
                    Subscription.west <= report.lon,
                    Subscription.east >= report.lon,
                    Subscription.south <= report.lat,
                    Subscription.north >= report.lat,
                ),
            )
        )
    )
    base = _base_url(session)
    n = 0
    for sub in subs:
        subject, body = _message(
            "new_in_area",
            sub.language,
            city="",
            id=report.id,
            title=report.title,
            category=_loc(report.category, "name", sub.language),
            url=f"{base}/reports/{report.id}",
            unsubscribe_url=f"{base}/reports/unsubscribe/{sub.token}",
        )
        notify.queue(
            session,
            "email",
            sub.email,
            body,
            subject=subject.replace("[] ", ""),
            topic="report.new_in_area",
            ref=f"report:{report.id}",
            headers=unsubscribe_headers(base, sub.token),
        )
        n += 1
    return n
