"""Who and what the staff's and administrators' pages name: units, their members, people's names and
addresses, the routing rules of a category. Read models for forms and lists (the pages run no SQL)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.i18n import localized
from smartcity.core.models import Department, User
from smartcity.reports.models import Route


def unit_names(session: Session, language: str) -> dict[str, str]:
    """Every unit's name by its code (departments and control rooms)."""
    return {d.code: localized(d, "name", language) for d in session.scalars(select(Department))}


def unit_codes(session: Session) -> dict[int, str]:
    """Every unit's code by its id."""
    return dict(session.execute(select(Department.id, Department.code)).all())


def departments(session: Session, language: str, *, except_id: int | None = None) -> list[dict]:
    """The departments (units reports go to), by code: [{code, name}]."""
    q = select(Department).where(Department.kind == "department").order_by(Department.code)
    if except_id is not None:
        q = q.where(Department.id != except_id)
    return [{"code": d.code, "name": localized(d, "name", language)} for d in session.scalars(q)]


def members(session: Session, unit_id: int) -> list[dict]:
    """A unit's active accounts, by user name: [{id, name, username}]."""
    q = select(User).where(User.department_id == unit_id, User.active.is_(True)).order_by(User.username)
    return [{"id": u.id, "name": u.display_name or u.username, "username": u.username} for u in session.scalars(q)]


def usernames(session: Session, ids: list[int | None]) -> dict[int, str]:
    """The user names of these accounts, by id (None and unknown ids left out)."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return dict(session.execute(select(User.id, User.username).where(User.id.in_(wanted))).all())


def email_of(session: Session, user_id: int) -> str:
    """A signed-in person's own address (to fill their own subscription form)."""
    user = session.get(User, user_id)
    return (user.email or "") if user else ""


def own_contact(session: Session, identity: Identity) -> dict[str, str]:
    """The signed-in person's own name, email and phone, to fill their report form (empty when anonymous).
    Contact details are read only with an audit entry, even one's own."""
    user = session.get(User, identity.user_id) if identity.user_id else None
    if user is None:
        return {"name": "", "email": "", "phone": ""}
    audit.record(session, identity, "read_contact", "user", user.id, {"purpose": "report_form"})
    return {"name": user.display_name or "", "email": user.email or "", "phone": user.phone or ""}


def ruled_districts(session: Session, category: str) -> set[str | None]:
    """The districts with an administrator's rule for `category` (None: the rule for every district)."""
    return set(session.scalars(select(Route.district_code).where(Route.category_code == category)))
