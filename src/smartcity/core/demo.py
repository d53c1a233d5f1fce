"""Demo data for `make demo`: an account per role, then whatever each module adds."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from smartcity.core import accounts
from smartcity.core.city import CityProfile
from smartcity.core.models import User

DEMO_PASSWORD = "demo-password"


def demo_district(profile: CityProfile) -> str | None:
    """The district whose units the demo's unit-bound accounts belong to: the profile's `demo_district`,
    else its first district."""
    return profile.demo_district or (profile.districts[0].code if profile.districts else None)


def demo_accounts(profile: CityProfile) -> list[accounts.NewUser]:
    """An account for each of the core's roles; a module's demo adds accounts for its own roles."""
    district = demo_district(profile)
    return [
        accounts.NewUser("admin", DEMO_PASSWORD, "admin", "관리자"),
        accounts.NewUser("citizen", DEMO_PASSWORD, "citizen", "김민지", email="citizen@example.org"),
        accounts.NewUser("staff", DEMO_PASSWORD, "staff", "이준호", department=f"{district}-roads"),
        accounts.NewUser("publisher", DEMO_PASSWORD, "publisher", "정은지"),
    ]


def add_accounts(db, new_accounts: list[accounts.NewUser]) -> Iterator[str]:
    """Create the accounts that do not exist yet (idempotent) and say which there are."""
    with db.session() as s:
        existing = set(s.scalars(select(User.username)))
        for new in new_accounts:
            if new.username not in existing:
                accounts.create_user(s, new, actor="demo")
    yield f"demo accounts (password '{DEMO_PASSWORD}'): " + ", ".join(u.username for u in new_accounts)


def load_demo(db, profile: CityProfile) -> Iterator[str]:
    """Idempotent: accounts that exist are left alone. Then each module's demo."""
    from smartcity.core.module import call, declared

    yield from add_accounts(db, demo_accounts(profile))
    for module in declared():
        yield from call(module.demo, db, profile) or ()
