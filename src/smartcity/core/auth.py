"""Who is calling and what they may do: identities from session cookies or API keys, the one permission
check every route goes through, and CSRF protection for cookie-authenticated forms.

Modules declare their permissions in their `core.module.Module`; handlers ask with `Require("perm")` (a
FastAPI dependency) or `check(identity, "perm")`. No handler tests a role itself.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from smartcity.core import accounts
from smartcity.core.errors import NotAuthenticated, PermissionDenied

EVERY_ROLE = "*"  # in a grant: every role but the administrator's (who holds every permission anyway)


class Only(tuple):
    """A grant held by its roles only, not by administrators: a role's own standing (a guardian's bond to
    their wards, an operator's seat in a control room) rather than a power an administrator may use."""


def only(*roles: str) -> Only:
    return Only(roles)


# The core's own permissions → roles holding them (EVERY_ROLE: every role). Administrators hold every permission.
CORE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "users.manage": (),
    "audit.read": (),
    "apikeys.manage": (),
    "geo.manage": (),
    "events.all": (),
    "account.self": (EVERY_ROLE,),
}
# permission → roles holding it: the core's and every declared module's (core.module.declare refreshes it).
PERMISSIONS: dict[str, set[str]] = {}
EXCLUSIVE: frozenset[str] = frozenset()  # permissions granted with only(): administrators do not hold them


def refresh_grants(modules) -> None:
    """Rebuild PERMISSIONS from the core's grants and those of `modules` (each a core.module.Module)."""
    global PERMISSIONS, EXCLUSIVE
    every = {role for role in accounts.ROLES if role != "admin"}
    table: dict[str, set[str]] = {}
    exclusive: set[str] = set()
    for grants in (CORE_PERMISSIONS, *(m.permissions for m in modules)):
        for permission, roles in grants.items():
            for role in roles:
                if role != EVERY_ROLE and role not in accounts.ROLES:
                    raise ValueError(f"unknown role {role!r} in the grant of {permission!r}")
            table.setdefault(permission, set()).update(every if EVERY_ROLE in roles else roles)
            if isinstance(roles, Only):
                exclusive.add(permission)
    # Each replaced whole: a check in another thread sees the old table or the new one (declarations only add).
    EXCLUSIVE = frozenset(exclusive)
    PERMISSIONS = table


def permissions() -> dict[str, set[str]]:
    """permission → roles holding it, with the configured modules' declarations applied."""
    from smartcity.core.module import ensure_declared

    ensure_declared()
    return PERMISSIONS


@dataclass(frozen=True)
class Identity:
    """The caller of a request: a signed-in user, a user's API key, a system key, or anonymous."""

    user_id: int | None = None
    username: str | None = None
    role: str | None = None
    department_id: int | None = None
    department_code: str | None = None
    district_code: str | None = None
    via: str = "anonymous"  # anonymous | session | key
    key_id: int | None = None
    key_name: str | None = None
    key_scope: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.via != "anonymous"

    @property
    def label(self) -> str:
        if self.username:
            return self.username
        if self.key_name:
            return f"key:{self.key_name}"
        return "anonymous"

    def can(self, permission: str) -> bool:
        table = permissions()
        if permission not in table:
            raise KeyError(f"undeclared permission {permission!r}")
        if self.role == "admin" and permission not in EXCLUSIVE:
            return True
        return self.role is not None and self.role in table[permission]


ANONYMOUS = Identity()


def check(identity: Identity, permission: str) -> Identity:
    """Raise unless `identity` holds `permission`: 401 for the anonymous, 403 for everyone else."""
    if identity.can(permission):
        return identity
    if not identity.authenticated:
        raise NotAuthenticated("sign in or present an API key")
    raise PermissionDenied(f"you do not have the permission {permission!r}")


def identity_of_user(user, via: str, key=None) -> Identity:
    dept = user.department
    return Identity(
        user_id=user.id,
        username=user.username,
        role=user.role,
        department_id=user.department_id,
        department_code=dept.code if dept else None,
        district_code=dept.district_code if dept else None,
        via=via,
        key_id=key.id if key else None,
        key_name=key.name if key else None,
        key_scope=key.scope if key else None,
    )


def _key_from_headers(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def key_from_headers(request: Request) -> str | None:
    """The API key a request sends (``Authorization: Bearer`` or ``X-API-Key``), unchecked."""
    return _key_from_headers(request)


def resolve_identity(request: Request) -> Identity:
    """Work out who is calling, once per request (cached on request.state)."""
    cached = getattr(request.state, "identity", None)
    if cached is not None:
        return cached
    from smartcity.core.models import User

    db = request.app.state.db
    identity = ANONYMOUS
    key = _key_from_headers(request)
    if key:
        with db.session() as s:
            row = accounts.find_api_key(s, key)
            if row is None:
                raise NotAuthenticated("the API key is not valid or was revoked", code="invalid_api_key")
            if row.user is not None:  # a disabled account's keys are not found (accounts.find_api_key)
                identity = identity_of_user(row.user, "key", row)
            else:
                identity = Identity(via="key", key_id=row.id, key_name=row.name, key_scope=row.scope)
    elif "session" in request.scope and (uid := request.session.get("uid")):
        with db.session() as s:
            user = s.get(User, uid)
            if user is not None and user.active:
                identity = identity_of_user(user, "session")
            else:
                request.session.clear()
    request.state.identity = identity
    return identity


# --- sign-in throttling -----------------------------------------------------------------------------


class SigninThrottle:
    """Slows password guessing: after `limit` failures for one username or one address within `window`
    seconds, further attempts are refused until the window has passed. Kept per process, in memory."""

    def __init__(self, limit: int = 5, window: float = 900.0):
        self.limit, self.window = limit, window
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, ()) if now - t < self.window]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def blocked(self, username: str, ip: str | None) -> bool:
        now = time.monotonic()
        with self._lock:
            return any(len(self._recent(k, now)) >= self.limit for k in self._keys(username, ip))

    def failed(self, username: str, ip: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            for key in self._keys(username, ip):
                self._failures.setdefault(key, []).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(f"u:{username.lower()}", None)

    @staticmethod
    def _keys(username: str, ip: str | None) -> list[str]:
        return [f"u:{username.lower()}"] + ([f"ip:{ip}"] if ip else [])


# --- CSRF -----------------------------------------------------------------------------------------

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use); every form carries it as `csrf_token`."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def verify_csrf(request: Request) -> None:
    """Reject an unsafe request whose form field or X-CSRF-Token header does not carry the session token."""
    if request.method not in UNSAFE:
        return
    sent = request.headers.get("x-csrf-token")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get("csrf_token")
    expected = request.session.get("csrf") if "session" in request.scope else None
    if not expected or not sent or not hmac.compare_digest(str(sent), expected):
        raise PermissionDenied(
            "the form has expired or did not come from this site; reload and try again", code="csrf_failed"
        )


async def current_identity(request: Request) -> Identity:
    # The look-up reads the store: keep it off the event loop, which may be serving live streams.
    identity = getattr(request.state, "identity", None) or await run_in_threadpool(resolve_identity, request)
    if identity.via == "session":
        await verify_csrf(request)
    return identity


CurrentIdentity = Annotated[Identity, Depends(current_identity)]


class Require:
    """A dependency that lets a request through only if its caller holds the permission. `audited`: each
    refusal is written to the audit log (routes to personal data: who knocked, on what, is worth keeping)."""

    def __init__(self, permission: str, audited: bool = False):
        if permission not in permissions():
            raise KeyError(f"undeclared permission {permission!r}")
        self.permission = permission
        self.audited = audited

    async def __call__(self, request: Request) -> Identity:
        identity = await current_identity(request)
        if self.audited and not identity.can(self.permission):
            await run_in_threadpool(audit_refusal, request, identity, self.permission)
        return check(identity, self.permission)


def audit_refusal(request: Request, identity: Identity, permission: str) -> None:
    """Record that `identity` was refused `permission` on this request, in a transaction of its own."""
    from smartcity.core import audit

    with request.app.state.db.session() as s:
        audit.record(
            s,
            identity,
            "access_denied",
            "route",
            request.url.path,
            {
                "permission": permission,
                "method": request.method,
                "role": identity.role,
                "params": {k: str(v) for k, v in request.path_params.items()},
            },
            ip=request.client.host if request.client else None,
        )
