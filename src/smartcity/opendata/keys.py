"""Keys of the Seoul-style OpenAPI: issued to signed-in users on /opendata/keys (openapi_pages.py: issue,
list, revoke), each with a daily quota of calls, counted in memory and written in batches.

A key is a core `api_keys` row of scope 'opendata' (only its SHA-256 is stored, the key is shown once), issued
without a user: presented as an X-API-Key elsewhere it is nobody and opens nothing. Its owner is kept here
(`OpenApiKey`); a disabled owner's keys stop working. The key `sample` needs no registration and is limited
to 5 rows a call by the API (seoul_api.py).

Counting: `Usage` (one per store and process, a core Slot) keeps each key's calls of the day as stored at the
last flush plus those made since; a call adds one in memory, and the counts are written (one upsert per key
and day) at most every FLUSH_EVERY_S seconds by the call that finds them due, and by the module's job. With
several serving processes each sees the others' calls from its last flush on, so a key may go over its quota
by what the other processes counted in the last seconds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from smartcity.core import accounts
from smartcity.core.auth import Identity
from smartcity.core.context import Slot, context_of
from smartcity.core.errors import InvalidInput, NotAuthenticated, NotFound
from smartcity.core.i18n import N_
from smartcity.core.models import ApiKey, User
from smartcity.opendata.models import OpenApiKey, OpenApiUsage
from smartcity.opendata.settings import OpendataSettings

SCOPE = "opendata"
SAMPLE = "sample"
FLUSH_EVERY_S = 2.0
MAX_KEYS = 10  # keys in use per person
NAME_MAX = 100


# --- issuing ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyView:
    """One of a person's keys as the keys page shows it (never the key itself)."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    calls_today: int


def _owner_id(identity: Identity) -> int:
    if identity.user_id is None:
        raise NotAuthenticated(N_("Sign in to manage your OpenAPI keys."))
    return identity.user_id


def issue(session: Session, identity: Identity, name: str) -> tuple[ApiKey, str]:
    """A new key for the signed-in caller: the row and the key itself, shown only now (audited by core)."""
    owner = _owner_id(identity)
    name = (name or "").strip()
    if not name:
        raise InvalidInput(N_("Give the key a name (what it is for)."), code="invalid_name")
    if len(name) > NAME_MAX:
        raise InvalidInput(
            N_("A key's name is at most {max} characters."), code="invalid_name", params={"max": NAME_MAX}
        )
    in_use = session.scalar(
        select(func.count())
        .select_from(ApiKey)
        .join(OpenApiKey, OpenApiKey.api_key_id == ApiKey.id)
        .where(OpenApiKey.user_id == owner, ApiKey.revoked_at.is_(None))
    )
    if in_use >= MAX_KEYS:
        raise InvalidInput(
            N_("You have {max} keys in use; revoke one before issuing another."),
            code="too_many_keys",
            params={"max": MAX_KEYS},
        )
    row, key = accounts.create_api_key(session, name, user=None, scope=SCOPE, actor=identity)
    session.add(OpenApiKey(api_key_id=row.id, user_id=owner))
    session.flush()
    return row, key


def mine(session: Session, identity: Identity, usage: Usage, day: str) -> list[KeyView]:
    """The caller's keys, newest first, with today's calls."""
    rows = session.scalars(
        select(ApiKey)
        .join(OpenApiKey, OpenApiKey.api_key_id == ApiKey.id)
        .where(OpenApiKey.user_id == _owner_id(identity))
        .order_by(ApiKey.id.desc())
    )
    return [KeyView(r.id, r.name, r.prefix, r.created_at, r.revoked_at, usage.calls(session, r.id, day)) for r in rows]


def revoke(session: Session, identity: Identity, key_id: int) -> ApiKey:
    """Revoke one of the caller's keys (audited by core); another person's key is not found."""
    owned = session.scalar(
        select(OpenApiKey).where(OpenApiKey.api_key_id == key_id, OpenApiKey.user_id == _owner_id(identity))
    )
    if owned is None:
        raise NotFound(N_("You have no such key."))
    return accounts.revoke_api_key(session, key_id, actor=identity)


def key_id_of(session: Session, key: str) -> int | None:
    """The id of the issued key `key` if it may be used now (not revoked, its owner active), else None."""
    row = accounts.find_api_key(session, key, scope=SCOPE)
    if row is None:
        return None
    active = session.scalar(
        select(User.active).join(OpenApiKey, OpenApiKey.user_id == User.id).where(OpenApiKey.api_key_id == row.id)
    )
    return row.id if active else None


# --- counting ---------------------------------------------------------------------------------------------


def today(db) -> str:
    """The city's date, the day quotas count."""
    return datetime.now(context_of(db).profile.tz).date().isoformat()


def daily_quota(db) -> int:
    return context_of(db).settings_of(OpendataSettings).openapi_daily_quota


class Usage:
    """Calls per key and day: stored (as of the last flush) plus counted since, in memory."""

    def __init__(self, db):
        self.db = db
        self._lock = threading.Lock()
        self._pending: Counter[tuple[int, str]] = Counter()
        self._stored: dict[tuple[int, str], int] = {}
        self._flushed = time.monotonic()

    def _stored_calls(self, session: Session, key: tuple[int, str]) -> int:
        with self._lock:
            found = self._stored.get(key)
        if found is None:
            found = (
                session.scalar(
                    select(OpenApiUsage.calls).where(OpenApiUsage.api_key_id == key[0], OpenApiUsage.day == key[1])
                )
                or 0
            )
            with self._lock:
                found = self._stored.setdefault(key, found)
        return found

    def calls(self, session: Session, key_id: int, day: str) -> int:
        stored = self._stored_calls(session, (key_id, day))
        with self._lock:
            return stored + self._pending[(key_id, day)]

    def take(self, session: Session, key_id: int, day: str, quota: int) -> bool:
        """Count one call of `key_id` unless it has used its quota of `day` (False then, and not counted)."""
        key = (key_id, day)
        self._stored_calls(session, key)
        with self._lock:
            if self._stored[key] + self._pending[key] >= quota:
                return False
            self._pending[key] += 1
            due = time.monotonic() - self._flushed >= FLUSH_EVERY_S
        if due:
            self.flush()
        return True

    def flush(self) -> int:
        """Write the calls counted since the last flush (one upsert per key and day); how many were written."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
            self._flushed = time.monotonic()
        if not pending:
            return 0
        try:
            with self.db.session() as s:
                insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
                for (key_id, day), n in sorted(pending.items()):
                    stmt = insert(OpenApiUsage).values(api_key_id=key_id, day=day, calls=n)
                    s.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["api_key_id", "day"],
                            set_={"calls": OpenApiUsage.calls + stmt.excluded.calls},
                        )
                    )
                totals = {
                    (k, d): c
                    for k, d, c in s.execute(
                        select(OpenApiUsage.api_key_id, OpenApiUsage.day, OpenApiUsage.calls).where(
                            OpenApiUsage.api_key_id.in_({k for k, _ in pending})
                        )
                    )
                }
        except BaseException:
            with self._lock:
                self._pending.update(pending)  # counted again at the next flush, not lost
            raise
        days = {d for _, d in pending}
        with self._lock:
            for key in list(self._stored):
                if key[1] not in days:
                    del self._stored[key]  # an earlier day's count is not asked again
            for key in pending:
                self._stored[key] = totals.get(key, 0)
        return sum(pending.values())


USAGE: Slot[Usage] = Slot("opendata.openapi_usage", lambda context: Usage(context.db))


def flush_usage(db, settings=None) -> int:
    """Write the counted calls now (the module's job; tests)."""
    return USAGE.get(db).flush()
