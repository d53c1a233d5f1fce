"""Accounts, roles, passwords, API keys and the audit trail, on both stores."""

import pytest
from sqlalchemy import func, select

from smartcity.core import accounts, audit
from smartcity.core.errors import Conflict, InvalidInput
from smartcity.core.models import AuditEntry, User


def new(username="minji", role="citizen", **kw):
    return accounts.NewUser(username, kw.pop("password", "a long enough password"), role, **kw)


def test_a_user_is_created_with_an_argon2_hash_and_an_audit_entry(db):
    with db.session() as s:
        user = accounts.create_user(s, new(), actor="cli")
    with db.session() as s:
        stored = s.get(User, user.id)
        assert stored.password_hash.startswith("$argon2")
        assert "a long enough password" not in stored.password_hash
        assert accounts.authenticate(s, "minji", "a long enough password").id == user.id
        assert accounts.authenticate(s, "minji", "wrong password") is None
        assert accounts.authenticate(s, "nobody", "a long enough password") is None
        trail = audit.entries(s, object_type="user", object_id=user.id)
        assert [(e.actor, e.action) for e in trail] == [("cli", "create")]


@pytest.mark.parametrize(
    "kwargs, error, code",
    [
        (dict(role="mayor"), InvalidInput, "unknown_role"),
        (dict(username="a b"), InvalidInput, "invalid_username"),
        (dict(password="short"), InvalidInput, "weak_password"),
        (dict(role="staff"), InvalidInput, "unit_required"),
        (dict(role="staff", department="11230-control"), InvalidInput, "wrong_unit_kind"),
        (dict(role="operator", department="11230-roads"), InvalidInput, "wrong_unit_kind"),
        (dict(role="staff", department="no-such-unit"), InvalidInput, "unknown_department"),
    ],
)
def test_bad_accounts_are_refused_and_nothing_is_stored(db, kwargs, error, code):
    with pytest.raises(error) as caught, db.session() as s:
        accounts.create_user(s, new(**kwargs))
    assert caught.value.code == code
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_duplicate_usernames_conflict(db):
    with db.session() as s:
        accounts.create_user(s, new())
    with pytest.raises(Conflict), db.session() as s:
        accounts.create_user(s, new(role="guardian"))


def test_staff_and_operators_belong_to_units_of_their_kind(db):
    with db.session() as s:
        staff = accounts.create_user(s, new("junho", "staff", department="11230-roads"))
        op = accounts.create_user(s, new("hyunwoo", "operator", department="11230-control"))
        assert staff.department.district_code == "11230"
        assert op.department.kind == "control_room"


def test_api_keys_are_stored_hashed_and_can_be_revoked(db):
    with db.session() as s:
        row, key = accounts.create_api_key(s, "gateway")
    with db.session() as s:
        assert accounts.find_api_key(s, key).id == row.id
        assert key not in {r.key_hash for r in accounts.list_api_keys(s)}
        assert accounts.find_api_key(s, key, scope="open311") is None
        accounts.revoke_api_key(s, row.id)
    with db.session() as s:
        assert accounts.find_api_key(s, key) is None
