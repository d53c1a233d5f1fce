"""Web push: the platform's VAPID key and the browsers that asked to be notified (per account and device).

A browser subscribes with the key `public_key()` gives it and sends its PushSubscription (RFC 8030 endpoint,
RFC 8291 keys); `core.notify.WebPushChannel` encrypts each message to those keys and signs a VAPID token
(RFC 8292) with the private key, which is generated at set-up and kept beside the session key in var/.
An endpoint is personal data (it names one browser of one person): every subscription made, read or removed
is audited, and one the push service says is gone (404/410) is deleted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import tempfile
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid
from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from smartcity.core import audit
from smartcity.core.db import Base, UTCDateTime, utcnow
from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.i18n import N_
from smartcity.settings import Settings

KEY_FILE = "vapid_private_key.pem"
MAX_DEVICES = 10  # per account: a new phone's subscription pushes out the oldest one
MAX_ENDPOINT = 1000


class PushSubscription(Base):
    """One browser on one device that accepted notifications for an account."""

    __tablename__ = "push_subscriptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    endpoint: Mapped[str] = mapped_column(String(MAX_ENDPOINT), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))  # the browser's P-256 public key, base64url
    auth: Mapped[str] = mapped_column(String(100))  # its 16-byte authentication secret, base64url
    device: Mapped[str] = mapped_column(String(200), default="")  # the browser's own description of itself
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def info(self) -> dict:
        """The subscription as the browser gave it (what a push library takes)."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


# --- the VAPID key ---------------------------------------------------------------------------------------


def _key_path(settings: Settings) -> Path:
    return Path(settings.var_dir) / KEY_FILE


def ensure_vapid_key(settings: Settings) -> None:
    """Generate the VAPID key once (set-up, first start) unless one is configured. Several processes may
    start at once: the key is written to a temporary file and linked into place, so exactly one wins."""
    path = _key_path(settings)
    if settings.vapid_private_key or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Vapid()
    key.generate_keys()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".vapid-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key.private_pem())
        os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def vapid_key(settings: Settings) -> Vapid:
    """The platform's VAPID signing key: the configured one, or the one generated in var/."""
    if settings.vapid_private_key:
        value = settings.vapid_private_key.strip()
        if value.startswith("-----BEGIN"):
            return Vapid.from_pem(value.encode())
        return Vapid.from_string(value)
    ensure_vapid_key(settings)
    return Vapid.from_file(str(_key_path(settings)))


def public_key(settings: Settings) -> str:
    """The VAPID public key as a browser's `applicationServerKey` takes it: the uncompressed P-256 point,
    base64url without padding."""
    raw = vapid_key(settings).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(raw)


def vapid_subject(settings: Settings) -> str:
    return settings.vapid_subject or f"mailto:{settings.mail_from}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


# --- subscriptions --------------------------------------------------------------------------------------


def _problem(field: str, message: str) -> dict:
    return {"field": field, "problem": message}


def _check(info: object, allow_http: bool) -> tuple[str, str, str]:
    """(endpoint, p256dh, auth) of a browser's PushSubscription JSON, every problem reported at once."""
    if not isinstance(info, dict):
        raise InvalidInput(N_("a push subscription is a JSON object"), code="invalid_subscription")
    problems = []
    endpoint = info.get("endpoint")
    keys = info.get("keys") if isinstance(info.get("keys"), dict) else {}
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > MAX_ENDPOINT:
        problems.append(_problem("endpoint", f"a URL of at most {MAX_ENDPOINT} characters"))
    else:
        parts = urlsplit(endpoint)
        schemes = ("https", "http") if allow_http else ("https",)
        if parts.scheme not in schemes or not parts.hostname:
            problems.append(_problem("endpoint", "an https URL of the browser's push service"))
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url_decode(str(p256dh)))
        if not isinstance(p256dh, str):
            raise ValueError
    except (ValueError, binascii.Error):
        problems.append(_problem("keys.p256dh", "the browser's P-256 public key, base64url"))
    try:
        if not isinstance(auth, str) or len(_b64url_decode(auth)) != 16:
            raise ValueError
    except (ValueError, binascii.Error):
        problems.append(_problem("keys.auth", "the browser's 16-byte secret, base64url"))
    if problems:
        raise InvalidInput(N_("this push subscription cannot be used"), code="invalid_subscription", details=problems)
    return endpoint, p256dh, auth


def subscribe(
    session: Session, identity, info: object, device: str = "", *, allow_http: bool = False
) -> PushSubscription:
    """Keep the calling account's subscription of one browser (its PushSubscription JSON). The same browser
    subscribing again updates its keys; one signed in to another account before is moved to this one."""
    endpoint, p256dh, auth = _check(info, allow_http)
    sub = session.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint))
    if sub is not None and sub.user_id != identity.user_id:
        audit.record(session, identity, "delete", "push_subscription", sub.id, {"reason": "another account"})
        session.delete(sub)
        session.flush()
        sub = None
    action = "update" if sub is not None else "create"
    if sub is None:
        sub = PushSubscription(user_id=identity.user_id, endpoint=endpoint)
        session.add(sub)
    sub.p256dh, sub.auth, sub.device = p256dh, auth, device[:200]
    session.flush()
    audit.record(session, identity, action, "push_subscription", sub.id, {"device": sub.device})
    older = list(
        session.scalars(
            select(PushSubscription)
            .where(PushSubscription.user_id == identity.user_id)
            .order_by(PushSubscription.created_at.desc(), PushSubscription.id.desc())
            .offset(MAX_DEVICES)
        )
    )
    for old in older:
        audit.record(session, identity, "delete", "push_subscription", old.id, {"reason": "too many devices"})
        session.delete(old)
    return sub


def unsubscribe(session: Session, identity, endpoint: object) -> None:
    """End the calling account's subscription of one browser (by its endpoint)."""
    sub = session.scalar(
        select(PushSubscription).where(
            PushSubscription.endpoint == str(endpoint), PushSubscription.user_id == identity.user_id
        )
    )
    if sub is None:
        raise NotFound(N_("this browser is not subscribed"), code="no_subscription")
    audit.record(session, identity, "delete", "push_subscription", sub.id, {"device": sub.device})
    session.delete(sub)


def devices(session: Session, identity) -> list[dict]:
    """The calling account's subscribed browsers (no endpoints: they are only for the push service). Audited."""
    rows = subscriptions_of(session, identity.user_id)
    audit.record(session, identity, "read", "push_subscription", None, {"count": len(rows)})
    return [
        {
            "id": s.id,
            "device": s.device,
            "created_at": s.created_at.isoformat(),
            "last_sent_at": s.last_sent_at.isoformat() if s.last_sent_at else None,
        }
        for s in rows
    ]


def subscriptions_of(session: Session, user_id: int) -> list[PushSubscription]:
    return list(
        session.scalars(
            select(PushSubscription).where(PushSubscription.user_id == user_id).order_by(PushSubscription.id)
        )
    )


def has_subscription(session: Session, user_id: int | None) -> bool:
    if user_id is None:
        return False
    return bool(session.scalar(select(func.count()).where(PushSubscription.user_id == user_id)))


def remove_gone(session: Session, sub: PushSubscription, status: int) -> None:
    """The push service no longer knows this browser (404/410): forget it, as the person's browser asked."""
    audit.record(
        session, "job:notifications", "delete", "push_subscription", sub.id, {"reason": "gone", "status": status}
    )
    session.delete(sub)
