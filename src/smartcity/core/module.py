"""The module contract: what a capability module (reports, safety, …) declares to core, in one object.

A module package exposes `module = Module(...)`. Core reads the declarations; nothing registers at import:

- `discover()` finds the modules: every sub-package of `smartcity` with a `module` attribute, then those that
  other distributions declare in the `smartcity.modules` entry-point group; SMARTCITY_MODULES (import paths,
  `package` or `package:attribute`) replaces that list.
- `declare(modules)` applies the process-wide declarations once per module: roles, unit kinds, permissions,
  personal event topics, error formats, renderers. It runs when an app is built, a command starts, or
  a permission, role or unit kind is first looked up (a service called by a test or a script), whichever is
  first; declarations only ever add, so a role or permission once declared stays valid in the process.
- `install(app, context)` (from `create_app`): the module's routers, navigation links, home page actions and
  pins, event handlers, and its `setup(app, context)` hook for what a declaration cannot say (start-up and
  shut-down of a listener, say).
- The CLI adds each module's click commands, `smartcity init` runs its `seed`, `smartcity demo` its `demo`,
  the scheduler its `jobs`, `smartcity settings` lists its settings class; `datasets()` gathers the
  datasets modules publish (for the open data module).

Routers, hooks and handlers may be given as "package.module:attribute" strings, resolved when the app is
built: a module's routes can then declare permissions (`Require`) that exist by the time they are imported.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import pkgutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smartcity.core.auth import EVERY_ROLE as EVERY_ROLE  # modules grant with them
from smartcity.core.auth import only as only
from smartcity.core.jobs import Job
from smartcity.core.web import NavLink

log = logging.getLogger(__name__)

ENTRY_POINTS = "smartcity.modules"
PACKAGE = Path(__file__).parent.parent

Ref = str | Callable[..., Any]  # an object or its "package.module:attribute" path


@dataclass(frozen=True)
class Role:
    """A role a module adds; `unit_kind`: accounts of this role belong to a unit of that kind."""

    name: str
    description: str
    unit_kind: str | None = None


@dataclass(frozen=True)
class HomeAction:
    """A main action on the home page: a label (an N_() msgid) and where it leads."""

    label: str
    href: str
    primary: bool = False


@dataclass(frozen=True)
class PersonalTopic:
    """Events under `prefix` carry personal data: see `core.events.personal`."""

    prefix: str
    admit: Ref
    subject: Ref


@dataclass(frozen=True)
class Dataset:
    """A dataset a module publishes: `rows(session)` yields one dict per row (the open data module's input).

    events    topic prefixes of the events after which its rows may have changed (the open data module
              refreshes it then; without any, on its schedule only)
    key       the column identifying a row across publications (else rows are compared whole)
    personal  its rows carry persons' locations: never publishable (the open data module refuses it, as it
              refuses a dataset refreshed by a personal event topic)
    rows_by_key  `rows_by_key(session, keys)` yields the rows of those keys only (a key without a row: the row
              is gone); with `key`, an event whose data holds the key refreshes just that row, not them all
    title, description        in Korean (the catalogue's first language); title_en, description_en in English"""

    name: str
    title: str
    rows: Ref
    description: str = ""
    module: str = ""
    events: Sequence[str] = ()
    key: str | None = None
    personal: bool = False
    title_en: str = ""
    tags: Sequence[str] = ()
    theme: str = ""
    rows_by_key: Ref | None = None
    description_en: str = ""


@dataclass(frozen=True)
class PlaceSource:
    """Named points a module offers to the place search: `read(context)` yields core.places.PlaceHit (kind
    "asset", "campaign", …); the gazetteer reads them again after an event under `changed_by`."""

    read: Ref
    changed_by: str


@dataclass(frozen=True)
class Module:
    """One capability of the city, as core sees it.

    routers       APIRouters, their paths, or functions making one; included in this order
    permissions   permission → roles holding it (EVERY_ROLE: every role); administrators hold all but those granted
                  with only(roles…): a role's own standing (a guardian's wards), not a power
    roles         roles the module adds; unit_kinds: kinds of unit (department, control room, …) → description
    nav           top navigation links, each shown to holders of its permission
    home_actions  the site's main actions the module puts on the home page
    home_pins     URLs answering GeoJSON points: the module's recent items on the home page's map
    jobs          periodic jobs, `run(db, settings)`
    handlers      (topic prefix, fn(context, event)): called for every event under the prefix, in each process
    mqtt          core.mqtt.Subscription(name, broker, topics, handler): messages the module takes from an MQTT
                  broker, through the process's one client per broker (core.mqtt)
    personal      event topics that carry personal data
    settings      a dataclass of `core.module.setting(...)` fields, read from SMARTCITY_<NAME>_<FIELD>
    error_formats path prefix → fn(request, error) answering errors there in the protocol's own format
    renderers     (read-model type, format, fn(request, model, **context)): core.render's registry
    cli           a click command, or fn() → click commands, added to `smartcity`
    seed          fn(session, profile) → what it added (idempotent; `smartcity init`)
    demo          fn(db, profile) → lines to print (idempotent; `smartcity demo`)
    datasets      what the module publishes as open data
    setup         fn(app, context): anything else at app build (start-up/shut-down hooks)
    models        the module's tables, imported for metadata and Alembic
    places        PlaceSource(read, changed_by): named points the module's data holds that the gazetteer's search
                  finds (core.places), read from the module's own tables, read again after `changed_by` events
    audit         core.audit.AuditWords: how the audit page tells the module's entries (object types, actions,
                  detail keys and values in words)
    """

    name: str
    routers: Sequence[Any] = ()
    permissions: Mapping[str, Sequence[str]] = field(default_factory=dict)
    roles: Sequence[Role] = ()
    unit_kinds: Mapping[str, str] = field(default_factory=dict)
    nav: Sequence[NavLink] = ()
    home_actions: Sequence[HomeAction] = ()
    home_pins: Sequence[str] = ()
    jobs: Sequence[Job] = ()
    handlers: Sequence[tuple[str, Ref]] = ()
    mqtt: Sequence[Any] = ()
    personal: Sequence[PersonalTopic] = ()
    settings: type | None = None
    error_formats: Mapping[str, Ref] = field(default_factory=dict)
    renderers: Sequence[tuple[Ref, str, Ref]] = ()
    cli: Ref | None = None
    seed: Ref | None = None
    demo: Ref | None = None
    datasets: Sequence[Dataset] = ()
    setup: Ref | None = None
    models: str | None = None
    places: Sequence[PlaceSource] = ()
    audit: Ref | None = None

    @property
    def env_prefix(self) -> str:
        return f"SMARTCITY_{self.name.upper()}_"


def resolve(ref: Any) -> Any:
    """The object behind a "package.module:attribute" path; anything else as it is."""
    if not isinstance(ref, str):
        return ref
    path, _, attribute = ref.partition(":")
    found: Any = importlib.import_module(path)
    for part in attribute.split(".") if attribute else ():
        found = getattr(found, part)
    return found


def call(ref: Ref | None, *args: Any) -> Any:
    return None if ref is None else resolve(ref)(*args)


# --- finding the modules ----------------------------------------------------------------------------


def _load(path: str) -> Module:
    found = resolve(path if ":" in path else f"{path}:module")
    if not isinstance(found, Module):
        raise TypeError(f"{path} is not a smartcity Module declaration")
    return found


def _bundled() -> Iterator[Module]:
    for info in sorted(pkgutil.iter_modules([str(PACKAGE)]), key=lambda i: i.name):
        if info.ispkg and info.name != "core":
            found = getattr(importlib.import_module(f"smartcity.{info.name}"), "module", None)
            if isinstance(found, Module):
                yield found


def _installed() -> Iterator[Module]:
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINTS), key=lambda e: e.name):
        found = entry.load()
        if not isinstance(found, Module):
            raise TypeError(f"entry point {entry.name} ({entry.value}) is not a smartcity Module declaration")
        yield found


def discover(paths: str | Iterable[str] | None = None) -> tuple[Module, ...]:
    """The modules of this installation: `paths` (or SMARTCITY_MODULES) when given, else the bundled ones and
    those of the `smartcity.modules` entry points, in name order. Names are unique."""
    if paths is None:
        from smartcity.settings import get_settings

        paths = get_settings().modules
    if isinstance(paths, str):
        paths = [p.strip() for p in paths.split(",") if p.strip()]
    found = [_load(p) for p in paths] if paths else [*_bundled(), *_installed()]
    names: set[str] = set()
    for m in found:
        if m.name in names:
            raise ValueError(f"two modules are named {m.name!r}")
        names.add(m.name)
    return tuple(found)


# --- process-wide declarations ----------------------------------------------------------------------

_declared: dict[str, Module] = {}
_lock = threading.RLock()
_defaults_done = False


def declare(modules: Iterable[Module]) -> None:
    """Apply what `modules` declare to this process's tables (unit kinds, roles, permissions, then personal
    topics and error formats), once per module."""
    from smartcity.core import accounts, auth, events, render, web

    with _lock:
        new = []
        for m in modules:
            if _declared.get(m.name) is m:
                continue
            if m.name in _declared:
                raise ValueError(f"another module named {m.name!r} was declared in this process")
            _declared[m.name] = m
            new.append(m)
            accounts.UNIT_KINDS.update({k: v for k, v in m.unit_kinds.items() if k not in accounts.UNIT_KINDS})
            for role in m.roles:
                if role.unit_kind is not None and role.unit_kind not in accounts.UNIT_KINDS:
                    raise ValueError(f"role {role.name!r} of {m.name} needs an undeclared unit kind {role.unit_kind!r}")
                if role.name not in accounts.ROLES:
                    admin = accounts.ROLES.pop("admin")
                    accounts.ROLES[role.name] = role.description
                    accounts.ROLES["admin"] = admin  # listed last, as in the core
                if role.unit_kind is not None:
                    accounts.UNIT_KIND.setdefault(role.name, role.unit_kind)
        if not new:
            return
        # Grants first: resolving a renderer below may import a module's routes, which ask for permissions.
        auth.refresh_grants(_declared.values())
        for m in new:
            for topic in m.personal:
                events.personal(topic.prefix, resolve(topic.admit), resolve(topic.subject))
            for prefix, renderer in m.error_formats.items():
                web.register_error_format(prefix, resolve(renderer))
            for kind, fmt, renderer in m.renderers:
                render.register(resolve(kind), fmt, resolve(renderer))


def declared() -> tuple[Module, ...]:
    """The modules declared in this process (declaring the configured ones first if nothing has been)."""
    ensure_declared()
    return tuple(_declared.values())


def ensure_declared() -> None:
    """Declare the configured modules once, unless an app or a command already did."""
    global _defaults_done
    if _defaults_done:
        return
    with _lock:
        if not _defaults_done:
            _defaults_done = True
            try:
                declare(discover())
            except BaseException:
                _defaults_done = False
                raise


# --- building an app --------------------------------------------------------------------------------


def install(app, context) -> None:
    """Include each module's routers, add its navigation links and home page actions and pins, connect its
    event handlers, run its setup hook and subscribe its MQTT topics."""
    from fastapi import APIRouter

    from smartcity.core import pages, web

    declare(context.modules)
    # The module that declares the site's primary action leads the home page with its actions; the others follow.
    for m in sorted(context.modules, key=lambda m: not any(a.primary for a in m.home_actions)):
        for action in m.home_actions:
            pages.add_home_action(action)
    for m in context.modules:
        for link in m.nav:
            web.add_nav(link.label, link.href, link.permission)
        for url in m.home_pins:
            pages.add_home_pins(url)
        for ref in m.routers:
            router = resolve(ref)
            app.include_router(router if isinstance(router, APIRouter) else router())
        for prefix, handler in m.handlers:
            fn = resolve(handler)
            context.db.events.on(prefix, lambda event, fn=fn: fn(context, event))
        call(m.setup, app, context)
    from smartcity.core import mqtt

    mqtt.install(app, context, context.modules)  # after the setups: its clients start once what they feed has


def jobs(modules: Iterable[Module]) -> list[Job]:
    """Core's jobs, then every module's (names are unique)."""
    from smartcity.core.jobs import CORE_JOBS

    found: dict[str, Job] = {}
    for j in [*CORE_JOBS, *(j for m in modules for j in m.jobs)]:
        if j.name in found:
            raise ValueError(f"two jobs are named {j.name!r}")
        found[j.name] = j
    return list(found.values())


def datasets(modules: Iterable[Module]) -> list[Dataset]:
    """Every dataset the modules publish, each named `<module>.<name>`."""
    from dataclasses import replace

    return [replace(d, name=f"{m.name}.{d.name}", module=m.name) for m in modules for d in m.datasets]


def commands(modules: Iterable[Module]) -> list[Any]:
    """The click commands the modules add to `smartcity`."""
    import click

    found = []
    for m in modules:
        made = resolve(m.cli)
        if made is not None and not isinstance(made, click.Command):
            made = made()
        found += list(made) if isinstance(made, list | tuple) else [made] if made is not None else []
    return found


def settings_prefix(cls: type) -> str:
    """The environment prefix of the settings class `cls`: that of the declared module declaring it."""
    for m in declared():
        if m.settings is cls:
            return m.env_prefix
    raise LookupError(f"no declared module has the settings class {cls.__name__}")


def model_paths(modules: Iterable[Module]) -> list[str]:
    return [m.models for m in modules if m.models]
