"""Demo data for `make demo`: an account per role, then whatever each module adds."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from smartcity.core import accounts
from smartcity.core.city import CityProfile
from smartcity.core.models import User

DEMO_PASSWORD = "demo-password"


def demo_accounts(profile: CityProfile) -> list[accounts.NewUser]:
    first = profile.districts[0].code if profile.districts else None
    gangnam = next((d.code for d in profile.districts if d.name_en.startswith("Gangnam")), first)
    return [
        accounts.NewUser("admin", DEMO_PASSWORD, "admin", "Administrator"),
        accounts.NewUser("citizen", DEMO_PASSWORD, "citizen", "Kim Minji", email="citizen@example.org"),
        accounts.NewUser("staff", DEMO_PASSWORD, "staff", "Lee Junho", department=f"{gangnam}-roads"),
        accounts.NewUser("guardian", DEMO_PASSWORD, "guardian", "Park Seoyeon", phone="010-0000-0000"),
        accounts.NewUser(
            "operator", DEMO_PASSWORD, "operator", "Choi Hyunwoo", department=f"{gangnam}-control"
        ),
        accounts.NewUser("publisher", DEMO_PASSWORD, "publisher", "Jung Eunji"),
    ]


def load_demo(db, profile: CityProfile) -> Iterator[str]:
    """Idempotent: accounts that exist are left alone."""
    from smartcity.app import modules

    with db.session() as s:
        existing = set(s.scalars(select(User.username)))
        for new in demo_accounts(profile):
            if new.username not in existing:
                accounts.create_user(s, new, actor="demo")
    yield f"demo accounts (password '{DEMO_PASSWORD}'): " + ", ".join(
        u.username for u in demo_accounts(profile)
    )
    for module in modules():
        hook = getattr(module, "demo", None)
        if hook is not None:
            yield from hook(db, profile)
