"""What a running platform hands its services: the settings, the city profile, the modules and their
settings, read once. `create_app` makes one and attaches it to its store (`db.context`); a script or a test
that builds a `Database` of its own gets one made from the environment on first use (`context_of`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from smartcity.core.city import CityProfile, load_profile
from smartcity.settings import Settings, get_settings

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
        found = self.module_settings.get(cls)
        return found if found is not None else self.settings.of(cls)

    @classmethod
    def build(cls, db: Database, settings: Settings, modules: tuple[Module, ...]) -> AppContext:
        """The context of `db`: module settings are read (and checked) from the environment `settings` were."""
        own = {m.settings: settings.of(m.settings, m.env_prefix) for m in modules if m.settings is not None}
        return cls(db, settings, load_profile(settings.city), modules, own)


def attach(db: Database, settings: Settings, modules: tuple[Module, ...] | None = None) -> AppContext:
    """Make `db`'s context from `settings` (and the declared modules unless given); `create_app` does it."""
    if modules is None:
        from smartcity.core.module import declared

        modules = declared()
    context = db.context = AppContext.build(db, settings, modules)
    return context


def context_of(db: Database) -> AppContext:
    """The context `db` belongs to; for a store made outside an app, one from the environment (made once)."""
    found = getattr(db, "context", None)
    if found is None:
        with _lock:
            found = getattr(db, "context", None)
            if found is None:
                found = attach(db, get_settings())
    return found
