"""What a running platform hands its services: the settings, the city profile, the modules and their
settings, read once. `create_app` makes one and attaches it to its store (`db.context`); a script or a test
that builds a `Database` of its own gets one made from the environment on first use (`context_of`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from smartcity.core.city import CityProfile, load_profile
from smartcity.settings import Settings, get_settings, read_env

if TYPE_CHECKING:
    from smartcity.core.db import Database
    from smartcity.core.module import Module

T = TypeVar("T")
_lock = threading.Lock()


@dataclass
class AppContext:
    db: Database
    settings: Settings
    profile: CityProfile
    modules: tuple[Module, ...] = ()
    module_settings: dict[type, Any] = field(default_factory=dict)

    def settings_of(self, cls: type[T]) -> T:
        """The settings of the module whose settings class is `cls`."""
        return self.module_settings[cls]

    @classmethod
    def build(
        cls, db: Database, settings: Settings, modules: tuple[Module, ...], env: dict[str, str] | None = None
    ) -> AppContext:
        own = {m.settings: read_env(m.settings, m.env_prefix, env) for m in modules if m.settings is not None}
        return cls(db, settings, load_profile(settings.city), modules, own)


def context_of(db: Database) -> AppContext:
    """The context `db` belongs to; for a store made outside an app, one from the environment (made once)."""
    found = getattr(db, "context", None)
    if found is None:
        with _lock:
            found = getattr(db, "context", None)
            if found is None:
                from smartcity.core.module import declared

                found = db.context = AppContext.build(db, get_settings(), declared())
    return found
