"""What every participation rule stands on: the module's settings, a text's checks, the person acting, and the
race-safe insert of a once-per-person row."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from smartcity.core.auth import Identity, check
from smartcity.core.context import context_of
from smartcity.core.db import Database
from smartcity.core.errors import InvalidInput, PermissionDenied
from smartcity.core.i18n import N_
from smartcity.participation.settings import ParticipationSettings

TITLE_MAX, BODY_MAX, TEXT_MAX, REASON_MAX = 200, 10_000, 5_000, 500


def settings_of(db: Database) -> ParticipationSettings:
    return context_of(db).settings_of(ParticipationSettings)


def text(value: str, field: str, least: int, most: int) -> str:
    """A text stripped of its outer spaces, refused when shorter than `least` or longer than `most`."""
    kept = (value or "").strip()
    if len(kept) < least:
        short = N_("the text is too short: write at least {count} characters")
        raise InvalidInput(short, params={"count": least}, details={"field": field})
    if len(kept) > most:
        long = N_("the text is too long: write at most {count} characters")
        raise InvalidInput(long, params={"count": most}, details={"field": field})
    return kept


def signed_in(identity: Identity) -> int:
    """The acting person's user id; refused to visitors and to keys without a person."""
    check(identity, "participation.take_part")
    if identity.user_id is None:
        raise PermissionDenied(N_("only a person's account can take part"), code="person_only")
    return identity.user_id


def insert_once(session: Session, model, **values) -> bool:
    """Insert a (thing, person) row unless it is there; True when this call added it."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(model).values(**values).on_conflict_do_nothing().returning(model.id)
    return session.execute(statement).first() is not None  # rowcount is not told with RETURNING
