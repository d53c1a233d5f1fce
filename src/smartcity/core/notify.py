"""Notifications: messages to citizens, guardians and staff through pluggable channels.

A message is written to the outbox in the caller's transaction (so a rolled-back change sends nothing),
then a job delivers pending messages through its channel and records the outcome, retrying failures.

Channels: `email` (SMTP, or kept in the outbox only when SMARTCITY_EMAIL_CHANNEL=log), `sms` (an HTTP
gateway: JSON POST {to, text}), `push` (web push to one subscribed browser: RFC 8030 delivery, RFC 8291
aes128gcm payload, RFC 8292 VAPID token; `queue_push` queues one message per device of an account) and `log`
(outbox only; the demo's channel).

A failure is retried with backoff up to MAX_ATTEMPTS; a channel raises `Undeliverable` for what no retry can
mend (a push subscription the push service says is gone), and the message is marked failed at once.
"""

from __future__ import annotations

import json
import logging
import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import cached_property
from typing import Protocol

import httpx
from pywebpush import WebPushException, webpush
from sqlalchemy import JSON, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session

from smartcity.core import push
from smartcity.core.db import Base, UTCDateTime, utcnow
from smartcity.settings import Settings

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
CHANNELS = ("email", "sms", "push", "log")


class Notification(Base):
    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))  # email | sms | push | log
    to: Mapped[str] = mapped_column(String(200))  # push: the id of the browser's subscription
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(String(100), default="")
    ref: Mapped[str | None] = mapped_column(String(100), nullable=True)  # e.g. "report:12"
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_try_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Extra mail headers, e.g. RFC 8058's List-Unsubscribe pair, so a mail client can offer one-click unsubscribe.
    headers: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # The page the message is about (push: opened when the notification is tapped).
    url: Mapped[str | None] = mapped_column(String(500), nullable=True)


class Undeliverable(Exception):
    """A message no retry can deliver (its recipient is gone): marked failed at once."""


class Channel(Protocol):
    def send(self, message: Notification) -> None: ...


class LogChannel:
    """Keeps the message in the outbox and the server log only."""

    def send(self, message: Notification) -> None:
        log.info("notification to %s: %s", message.to, message.subject or message.body[:60])


class SmtpChannel:
    def __init__(self, settings: Settings):
        self.settings = settings

    def send(self, message: Notification) -> None:
        s = self.settings
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = s.mail_from, message.to, message.subject
        for name, value in (message.headers or {}).items():
            mail[name] = value
        mail.set_content(message.body)
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
            smtp.send_message(mail)


class SmsGatewayChannel:
    """An HTTP SMS gateway: POST {"to", "text"} as JSON; any 2xx is success."""

    def __init__(self, settings: Settings):
        self.url, self.token = settings.sms_gateway_url, settings.sms_gateway_token

    def send(self, message: Notification) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        text = f"{message.subject}\n{message.body}" if message.subject else message.body
        r = httpx.post(self.url, json={"to": message.to, "text": text}, headers=headers, timeout=10)
        r.raise_for_status()


# A push message's plain text is at most 3993 bytes (RFC 8291: one 4096-byte record less its overhead);
# keeping the body well under that leaves room for the title, the link and the JSON around them.
PUSH_BODY_BYTES = 2400


class WebPushChannel:
    """Web push to one subscribed browser (pywebpush): the message as JSON {title, body, url, tag, urgent},
    encrypted to the browser's keys (aes128gcm) and sent with a VAPID token for the endpoint's origin.
    The message's `headers` carry the push headers: TTL (seconds the push service keeps it for an offline
    device), Urgency (RFC 8030 §5.3: "high" wakes a sleeping phone) and Topic (a newer message replaces an
    undelivered one of the same topic). 404/410 from the push service: the browser unsubscribed or the
    subscription expired, so it is deleted; 400/413 cannot succeed either; anything else is retried."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.subject = push.vapid_subject(settings)

    @cached_property
    def key(self):
        # Read when a push message is due, not each time the outbox job looks for work.
        return push.vapid_key(self.settings)

    def send(self, message: Notification) -> None:
        session = object_session(message)
        sub = session.get(push.PushSubscription, int(message.to)) if message.to.isdigit() else None
        # A removed subscription's id may be taken again by another's: a message only goes to its own account.
        if sub is None or sub.user_id != message.user_id:
            raise Undeliverable("the browser's subscription was removed")
        headers = dict(message.headers or {})
        ttl = int(headers.pop("TTL", DEFAULT_PUSH_TTL))
        try:
            webpush(
                sub.info(),
                push_payload(message),
                vapid_private_key=self.key,
                # a new dict each time: pywebpush fills in `aud` (the endpoint's origin) and `exp` in place
                vapid_claims={"sub": self.subject},
                ttl=ttl,
                headers=headers,
                timeout=10,
            )
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (404, 410):
                push.remove_gone(session, sub, status)
                raise Undeliverable(f"the push service no longer knows this browser ({status})") from None
            if status in (400, 413):
                raise Undeliverable(f"the push service refused the message ({status})") from None
            raise
        sub.last_sent_at = utcnow()


DEFAULT_PUSH_TTL = 24 * 3600


def push_payload(message: Notification) -> str:
    """The JSON a service worker's `push` listener reads (web/src/_sw_push.js)."""
    body = message.body.encode()[:PUSH_BODY_BYTES].decode(errors="ignore")
    return json.dumps(
        {
            "title": message.subject,
            "body": body,
            "url": message.url or "/",
            "tag": message.ref or "",
            "urgent": (message.headers or {}).get("Urgency") == "high",
        },
        ensure_ascii=False,
    )


def channels(settings: Settings) -> dict[str, Channel]:
    return {
        "email": SmtpChannel(settings) if settings.email_channel == "smtp" else LogChannel(),
        "sms": SmsGatewayChannel(settings) if settings.sms_gateway_url else LogChannel(),
        "push": WebPushChannel(settings),
        "log": LogChannel(),
    }


def queue(
    session: Session,
    channel: str,
    to: str,
    body: str,
    *,
    subject: str = "",
    topic: str = "",
    ref: str | None = None,
    user_id: int | None = None,
    headers: dict[str, str] | None = None,
    url: str | None = None,
) -> Notification:
    """Put a message in the outbox, within the caller's transaction (`headers`: extra mail headers, or a
    push message's TTL/Urgency/Topic; `url`: the page it is about)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    row = Notification(
        channel=channel,
        to=to,
        subject=subject[:300],
        body=body,
        topic=topic,
        ref=ref,
        user_id=user_id,
        headers=headers or None,
        url=url,
    )
    session.add(row)
    return row


def queue_push(
    session: Session,
    user_id: int,
    title: str,
    body: str,
    *,
    url: str,
    topic: str = "",
    ref: str | None = None,
    urgent: bool = False,
    ttl: int = DEFAULT_PUSH_TTL,
    replaces: str | None = None,
) -> int:
    """Queue a push message to every browser the account subscribed; returns how many (0: none subscribed).
    `urgent`: Urgency high (an emergency wakes the phone); `ttl`: seconds a push service keeps it for a device
    that is offline; `replaces`: an RFC 8030 Topic (at most 32 base64url characters) under which a newer
    message replaces one not yet delivered."""
    headers = {"TTL": str(ttl), "Urgency": "high" if urgent else "normal"}
    if replaces:
        headers["Topic"] = replaces
    subs = push.subscriptions_of(session, user_id)
    for sub in subs:
        queue(
            session,
            "push",
            str(sub.id),
            body,
            subject=title,
            topic=topic,
            ref=ref,
            user_id=user_id,
            headers=headers,
            url=url,
        )
    return len(subs)


def deliver_pending(db, settings: Settings, limit: int = 100) -> int:
    """Send what is due in the outbox; returns how many were sent. Failures are retried with backoff."""
    chans = channels(settings)
    sent = 0
    with db.session() as s:
        q = (
            select(Notification)
            .where(Notification.status == "pending", Notification.next_try_at <= utcnow())
            .order_by(Notification.id)
            .limit(limit)
        )
        if db.is_postgres:
            q = q.with_for_update(skip_locked=True)  # several processes may run this job
        for msg in s.scalars(q):
            msg.attempts += 1
            try:
                chans[msg.channel].send(msg)
            except Undeliverable as exc:
                db.tally.add("notification_failures", msg.channel)
                msg.status, msg.error = "failed", str(exc)[:2000]
                continue
            except Exception as exc:  # any channel failure is recorded and retried
                db.tally.add("notification_failures", msg.channel)
                msg.error = f"{type(exc).__name__}: {exc}"[:2000]
                if msg.attempts >= MAX_ATTEMPTS:
                    msg.status = "failed"
                else:
                    msg.next_try_at = utcnow() + timedelta(seconds=2**msg.attempts)
                continue
            msg.status, msg.sent_at, msg.error = "sent", utcnow(), None
            sent += 1
    return sent


def outbox_counts(db) -> dict[str, int]:
    """How many messages are pending (the backlog, due or waiting for a retry) and failed (given up)."""
    with db.session() as s:
        rows = s.execute(
            select(Notification.status, func.count())
            .where(Notification.status.in_(("pending", "failed")))
            .group_by(Notification.status)
        ).all()
    return {"pending": 0, "failed": 0} | {status: n for status, n in rows}
