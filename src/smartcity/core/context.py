"""What a running platform hands its services: the settings, the city profile, the modules and their
settings, read once. `create_app` makes one and attaches it to its store (`db.context`); a script or a test
that builds a `Database` of its own gets one made from the environment on first use (`context_of`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from smartcity.core.city import CityProfile, load_profile
from smartcity.settings import Settings, get_settings

if TYPE_CHECKING:
    from smartcity.core.db import Database
    from smartcity.core.module import Module

T = TypeVar("T")
_lock = threading.Lock()
_EMPTY = object()


@dataclass
class AppContext:
    db: Database
    settings: Settings
    profile: CityProfile
    modules: tuple[Module, ...] = ()
    module_settings: dict[type, Any] = field(default_factory=dict)
    slots: dict[Slot, Any] = field(default_factory=dict, repr=False)  # see Slot
    slot_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    listening: set[Slot] = field(default_factory=set, repr=False)  # slots whose invalidating events are followed

    def slot(self, slot: Slot[T]) -> T:
        """The value in `slot`, built on first use."""
        # One look-up, not `in` then `[]`: an invalidating event may drop the value in between.
        found = self.slots.get(slot, _EMPTY)
        if found is not _EMPTY:
            return found
        with self.slot_lock:
            found = self.slots.get(slot, _EMPTY)
            if found is _EMPTY:
                if slot.invalidated_by and slot not in self.listening:
                    self.listening.add(slot)
                    self.db.events.on(slot.invalidated_by, lambda _event: self.slots.pop(slot, None))
                found = self.slots[slot] = slot.build(self)
            return found

    def settings_of(self, cls: type[T]) -> T:
        """The settings of the module whose settings class is `cls`."""
        found = self.module_settings.get(cls)
        return found if found is not None else self.settings.of(cls)

    @classmethod
    def build(cls, db: Database, settings: Settings, modules: tuple[Module, ...]) -> AppContext:
        """The context of `db`: module settings are read (and checked) from the environment `settings` were."""
        own = {m.settings: settings.of(m.settings, m.env_prefix) for m in modules if m.settings is not None}
        return cls(db, settings, load_profile(settings.city), modules, own)


class Slot(Generic[T]):
    """A typed place in the context for per-process state derived from the store (an index, say), declared
    once by the module that owns it instead of a string key: built from the context on first use (once,
    thread-safe), forgotten by `drop` or when an event whose topic starts with `invalidated_by` arrives (on
    PostgreSQL, from any process). A store's context is made once (by its app, or on first use), so its slots
    are the store's: one writer, one index per store and process."""

    def __init__(self, name: str, build: Callable[[AppContext], T], *, invalidated_by: str | None = None):
        self.name, self.build, self.invalidated_by = name, build, invalidated_by

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"

    def get(self, db: Database) -> T:
        return context_of(db).slot(self)

    def drop(self, db: Database) -> None:
        context_of(db).slots.pop(self, None)


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
