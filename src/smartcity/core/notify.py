"""Notifications: messages to citizens, guardians and staff through pluggable channels.

A message is written to the outbox in the caller's transaction (so a rolled-back change sends nothing),
then a job delivers pending messages through its channel and records the outcome, retrying failures.

Channels: `email` (SMTP, or kept in the outbox only when SMARTCITY_EMAIL_CHANNEL=log), `sms` (an HTTP
gateway: JSON POST {to, text}), and `log` (outbox only; the demo's channel).
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

import httpx
from sqlalchemy import JSON, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from smartcity.core.db import Base, UTCDateTime, utcnow
from smartcity.settings import Settings

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


class Notification(Base):
    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))  # email | sms | log
    to: Mapped[str] = mapped_column(String(200))
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


def channels(settings: Settings) -> dict[str, Channel]:
    return {
        "email": SmtpChannel(settings) if settings.email_channel == "smtp" else LogChannel(),
        "sms": SmsGatewayChannel(settings) if settings.sms_gateway_url else LogChannel(),
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
) -> Notification:
    """Put a message in the outbox, within the caller's transaction (`headers`: extra mail headers)."""
    if channel not in ("email", "sms", "log"):
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
    )
    session.add(row)
    return row


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
