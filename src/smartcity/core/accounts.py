"""Accounts: users and their roles, passwords (argon2), API keys for machine clients."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.db import utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound
from smartcity.core.events import publish
from smartcity.core.i18n import N_
from smartcity.core.models import ApiKey, Department, User

# The core's roles; modules add theirs in their declaration (core.module.declare), before "admin".
ROLES = {
    "citizen": N_("Citizen: reports problems, follows them, takes part"),
    "staff": N_("Department staff: works the reports routed to their department"),
    "publisher": N_("Data publisher: publishes datasets to the open data plaza"),
    "admin": N_("Administrator: manages users, routing and the city's set-up"),
}
CORE_ROLES = tuple(ROLES)


def roles_for(modules) -> dict[str, str]:
    """The roles an app offers: the core's and those its modules declare (ROLES holds every role any app in
    this process declared), administrators last."""
    declared = {role.name for m in modules for role in m.roles}
    return {name: text for name, text in ROLES.items() if name in CORE_ROLES or name in declared}


# Kinds of unit (Department.kind) → what they are; modules add theirs.
UNIT_KINDS = {"department": "A city or district department"}
# Roles that belong to a unit, and the kind of unit they need.
UNIT_KIND = {"staff": "department"}

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{3,80}$")
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_rules(password: str) -> None:
    if len(password) < 8:
        raise InvalidInput("a password needs at least 8 characters", code="weak_password")


@dataclass(frozen=True)
class NewUser:
    username: str
    password: str
    role: str
    display_name: str = ""
    email: str | None = None
    phone: str | None = None
    department: str | None = None  # unit code
    language: str | None = None


def create_user(session: Session, new: NewUser, actor="cli") -> User:
    """Create a user after checking every rule; raises InvalidInput or Conflict and stores nothing."""
    from smartcity.core.module import ensure_declared

    ensure_declared()  # the modules' roles
    if new.role not in ROLES:
        raise InvalidInput(f"unknown role {new.role!r}; roles are: {', '.join(ROLES)}", code="unknown_role")
    if not USERNAME.match(new.username or ""):
        raise InvalidInput("a username has 3 to 80 letters, digits or . _ @ -", code="invalid_username")
    check_password_rules(new.password)
    department_id = _unit_for(session, new.role, new.department)
    taken = session.scalar(select(func.count()).select_from(User).where(User.username == new.username))
    if taken:
        raise Conflict(f"the username {new.username!r} is taken", code="duplicate_user")
    user = User(
        username=new.username,
        display_name=new.display_name or new.username,
        email=new.email,
        phone=new.phone,
        password_hash=hash_password(new.password),
        role=new.role,
        department_id=department_id,
        language=new.language,
    )
    session.add(user)
    session.flush()
    audit.record(session, actor, "create", "user", user.id, {"username": user.username, "role": user.role})
    return user


def _unit_for(session: Session, role: str, department: str | None) -> int | None:
    """The id of the unit `department` names, checked against what `role` needs (None: no unit)."""
    needed = UNIT_KIND.get(role)
    if needed and not department:
        raise InvalidInput(f"a {role} user needs a unit (--department CODE)", code="unit_required")
    if not department:
        return None
    unit = session.scalar(select(Department).where(Department.code == department))
    if unit is None:
        raise InvalidInput(f"no unit with code {department!r}", code="unknown_department")
    if needed and unit.kind != needed:
        raise InvalidInput(
            f"a {role} user belongs to a {needed.replace('_', ' ')}, and {unit.code} is a "
            f"{unit.kind.replace('_', ' ')}",
            code="wrong_unit_kind",
        )
    return unit.id


@dataclass(frozen=True)
class AccountChange:
    """An administrator's edit of an account: its name, email, unit and role."""

    display_name: str
    email: str | None
    department: str | None  # unit code
    role: str


def _actor_id(actor) -> int | None:
    return getattr(actor, "user_id", None) or getattr(actor, "id", None)


def update_user(session: Session, user_id: int, change: AccountChange, actor) -> User:
    """Apply `change` to the account after checking every rule; raises and changes nothing on a refusal.
    An administrator cannot take the administrator's role from themselves (nobody might be left to give it
    back)."""
    from smartcity.core.module import ensure_declared

    ensure_declared()
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    if change.role not in ROLES:
        raise InvalidInput(f"unknown role {change.role!r}; roles are: {', '.join(ROLES)}", code="unknown_role")
    if _actor_id(actor) == user.id and user.role == "admin" and change.role != "admin":
        raise InvalidInput("you cannot remove your own administrator role", code="own_admin_role")
    if change.email and "@" not in change.email:
        raise InvalidInput("an email address needs an @", code="invalid_email")
    department_id = _unit_for(session, change.role, change.department)
    before = {"name": user.display_name, "email": user.email, "unit": user.department.code if user.department else None}
    user.display_name = change.display_name.strip() or user.username
    user.email = change.email or None
    user.department_id = department_id
    session.flush()
    session.refresh(user)
    after = {"name": user.display_name, "email": user.email, "unit": user.department.code if user.department else None}
    changed = {k: f"{before[k] or '—'} → {after[k] or '—'}" for k in before if before[k] != after[k]}
    if changed:
        audit.record(session, actor, "update", "user", user.id, changed)
    if user.role != change.role:
        audit.record(session, actor, "change_role", "user", user.id, {"role": f"{user.role} → {change.role}"})
        user.role = change.role
    return user


def set_active(session: Session, user_id: int, active: bool, actor) -> User:
    """Enable or disable an account. A disabled account cannot sign in, and its sessions and API keys stop
    working (core.auth checks `active` on every request). Nobody disables themselves."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    if not active and _actor_id(actor) == user.id:
        raise InvalidInput("you cannot disable your own account", code="own_account")
    if user.active != active:
        user.active = active
        audit.record(session, actor, "enable" if active else "disable", "user", user.id, {"username": user.username})
        if not active:
            publish(session, "user.disabled", {"id": user.id}, audience="users.manage")
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        # Hash anyway so a wrong username takes as long as a wrong password.
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


_DUMMY_HASH = hash_password("not a real password")


def set_password(session: Session, username: str, password: str, actor="cli") -> User:
    check_password_rules(password)
    user = get_user(session, username)
    user.password_hash = hash_password(password)
    audit.record(session, actor, "set_password", "user", user.id)
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def list_users(session: Session, role: str | None = None) -> list[User]:
    q = select(User).order_by(User.username)
    if role:
        q = q.where(User.role == role)
    return list(session.scalars(q))


# --- API keys -----------------------------------------------------------------------------------


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_digest(key: str) -> str:
    """The stored form of an API key (what ``ApiKey.key_hash`` holds)."""
    return _digest(key)


def create_api_key(
    session: Session, name: str, *, user: User | None = None, scope: str = "api", actor="cli"
) -> tuple[ApiKey, str]:
    """Issue a key; returns the row and the key itself, which is never stored and shown only now."""
    if not name.strip():
        raise InvalidInput("an API key needs a name", code="invalid_name")
    key = "sc_" + secrets.token_urlsafe(30)
    row = ApiKey(name=name.strip(), prefix=key[:10], key_hash=_digest(key), user=user, scope=scope)
    session.add(row)
    session.flush()
    audit.record(session, actor, "create", "api_key", row.id, {"name": row.name, "scope": scope})
    return row, key


def find_api_key(session: Session, key: str, scope: str | None = None) -> ApiKey | None:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == _digest(key)))
    if row is None or row.revoked_at is not None or (scope and row.scope != scope):
        return None
    if row.user is not None and not row.user.active:
        # A disabled account's keys stop with it, wherever they are presented (the API, Open311).
        return None
    return row


def revoke_api_key(session: Session, key_id: int, actor="cli") -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, actor, "revoke", "api_key", row.id)
    return row


def list_api_keys(session: Session, scope: str | None = None) -> list[ApiKey]:
    q = select(ApiKey).order_by(ApiKey.id)
    if scope:
        q = q.where(ApiKey.scope == scope)
    return list(session.scalars(q))
