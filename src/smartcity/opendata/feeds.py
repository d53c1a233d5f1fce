"""Live platform datasets: what modules declare (`Module.datasets`, core.module.Dataset) kept current in the
catalogue without anyone exporting by hand.

A dataset is published again after an event under one of its declared topic prefixes (the handler marks it;
the `opendata.refresh` job, every few seconds, publishes what is marked) and at least every
`STALE_AFTER_S` seconds. Each publication is a version with its diff, as for a loaded file. A dataset that
declares a `key` and `rows_by_key` is refreshed after events whose data hold the key by those rows only (one
version per refresh for all the keys marked since the last): a million reports are not republished for
each report; the scheduled refresh still publishes them all.

Never publishable: a dataset whose rows carry persons' locations — declared `personal`, refreshed by a
personal event topic (a module's `PersonalTopic`, e.g. safety's positions), or, from a module that declares
personal topics, rows with coordinates. It is refused in code (`Refused`), and the refusal audited.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import select

from smartcity.core import audit
from smartcity.core.db import utcnow
from smartcity.core.errors import PermissionDenied
from smartcity.core.i18n import N_
from smartcity.core.module import Dataset as Declared
from smartcity.core.module import Module, call, declared
from smartcity.opendata import publishing, versions
from smartcity.opendata.catalogue import index_dataset, slug
from smartcity.opendata.models import Dataset, Resource

log = logging.getLogger(__name__)
STALE_AFTER_S = 900.0
ACTOR = "job:opendata"
COORDINATES = frozenset({"lat", "lon", "lng", "latitude", "longitude", "geometry", "position", "x", "y"})

_lock = threading.Lock()
# store → dataset name → the keys whose rows changed, or None: every row (an event without the key)
_dirty: weakref.WeakKeyDictionary[Any, dict[str, set | None]] = weakref.WeakKeyDictionary()
_refused_seen: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_first_run: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


class Refused(PermissionDenied):
    code = "personal_data"


def catalogue_name(feed: str) -> str:
    """The catalogue name of a module's dataset `<module>.<name>`: reports.daily-counts → reports-daily-counts."""
    return slug(feed.replace(".", "-"))


def _personal_prefixes(modules: Iterable[Module]) -> list[str]:
    return [t.prefix for m in modules for t in m.personal]


def check_publishable(dataset: Declared, modules: Iterable[Module]) -> None:
    """Refuse a dataset whose rows carry persons' locations (see the module's docstring)."""
    modules = list(modules)
    if dataset.personal:
        raise Refused(
            N_("dataset {name} carries persons' locations and is never published"), params={"name": dataset.name}
        )
    for prefix in _personal_prefixes(modules):
        for topic in dataset.events:
            if topic.startswith(prefix) or prefix.startswith(topic):
                raise Refused(
                    N_("dataset {name} follows the personal event topic {topic} and is never published"),
                    params={"name": dataset.name, "topic": prefix},
                )


def _checked_rows(dataset: Declared, rows: Iterable[Mapping[str, Any]], owner: Module | None) -> Iterator[Mapping]:
    """The rows, refusing coordinates from a module that carries persons' locations."""
    guarded = owner is not None and bool(owner.personal)
    for row in rows:
        if guarded and COORDINATES & {str(k).lower() for k in row}:
            raise Refused(
                N_("dataset {name} carries persons' locations and is never published"), params={"name": dataset.name}
            )
        yield row


def catalogued(session, dataset: Declared) -> Dataset:
    """The catalogue's entry of a module dataset (locked for this transaction), made when missing."""
    found = session.scalar(select(Dataset).where(Dataset.feed == dataset.name).with_for_update())
    if found is None:
        info = publishing.DatasetInfo(
            catalogue_name(dataset.name),
            title_ko=dataset.title,
            title_en=dataset.title_en,
            description_ko=dataset.description,
            description_en=dataset.description_en,
            publisher=dataset.module,
            update_frequency="continuous",
            theme=dataset.theme,
            tags=tuple(dataset.tags),
        )
        found = publishing.save_dataset(session, ACTOR, info, feed=dataset.name)
    _reworded(session, found, dataset)
    return found


OWNED = ("title_ko", "title_en", "description_ko", "description_en")


def _reworded(session, found: Dataset, dataset: Declared) -> None:
    """Bring the entry's title and descriptions to the module's current wording, field by field, where the
    entry still holds what the platform last wrote; a field staff changed stays theirs. An entry made before
    the platform kept its words (no record) is taken as the platform's."""
    words = {
        "title_ko": dataset.title or dataset.title_en or found.name,
        "title_en": dataset.title_en,
        "description_ko": dataset.description,
        "description_en": dataset.description_en,
    }
    record = json.dumps(words, ensure_ascii=False, sort_keys=True)
    if found.feed_wrote == record:
        return
    wrote = json.loads(found.feed_wrote) if found.feed_wrote else {a: getattr(found, a) for a in OWNED}
    changed = [a for a in OWNED if getattr(found, a) == wrote.get(a) and getattr(found, a) != words[a]]
    for attr in changed:
        setattr(found, attr, words[attr])
    found.feed_wrote = record
    if changed:
        found.modified_at = utcnow()
        audit.record(session, ACTOR, "update", "opendata.dataset", found.name, detail={"fields": changed})
        session.flush()
        index_dataset(session, found)


def demo(db, profile=None) -> Iterator[str]:
    """The demo's catalogue entries of every publishable module dataset: the serving process's first refresh
    publishes them, after the other modules' demos have made their rows (see `_stale`)."""
    modules = _modules(db)
    names = []
    for dataset in _declared_datasets(modules):
        try:
            check_publishable(dataset, modules)
        except Refused:
            continue
        with db.session() as s:
            names.append(catalogued(s, dataset).name)
    yield f"open data: {', '.join(names)} published by the server's first refresh"


def publish_feed(db, dataset: Declared, modules: Iterable[Module]) -> publishing.Published | None:
    """Publish one module dataset now (a new version, or nothing when no row changed); a refused one raises
    `Refused` after its refusal is audited."""
    modules = list(modules)
    owner = next((m for m in modules if m.name == dataset.module), None)
    try:
        check_publishable(dataset, modules)
        with db.session() as s:
            found = catalogued(s, dataset)
            rows = list(_checked_rows(dataset, call(dataset.rows, s) or (), owner))
            done = publishing.publish_records(s, ACTOR, found, "rows", rows, dataset.key)
            if done.version > 1 and not (done.added or done.removed or done.changed):
                s.rollback()  # nothing changed: no new version
                catalogued(s, dataset)  # but a module's new wording is kept
                return None
            return done
    except Refused as exc:
        with _lock:
            # Once per store and process: the job asks again every few seconds.
            first = dataset.name not in _refused_seen.setdefault(db, set())
            _refused_seen[db].add(dataset.name)
        if first:
            with db.session() as s:
                audit.record(s, ACTOR, "refuse", "opendata.dataset", dataset.name, {"reason": exc.message})
        raise


def publish_feed_changes(db, dataset: Declared, modules: Iterable[Module], keys: set) -> publishing.Published | None:
    """Publish the rows of `keys` only (see the module's docstring); the whole dataset when they cannot be
    applied alone (not published yet, its columns changed)."""
    modules = list(modules)
    owner = next((m for m in modules if m.name == dataset.module), None)
    check_publishable(dataset, modules)
    try:
        with db.session() as s:
            found = s.scalar(select(Dataset).where(Dataset.feed == dataset.name).with_for_update())
            if found is None:
                raise publishing.NeedsFullPublication
            ordered = sorted(keys, key=str)
            rows = list(_checked_rows(dataset, call(dataset.rows_by_key, s, ordered) or (), owner))
            done = publishing.publish_changes(s, ACTOR, found, "rows", rows, dataset.key, ordered)
            if done is not None:
                versions.keep_snapshot(s, done.resource_id, done.version)
            return done
    except publishing.NeedsFullPublication:
        return publish_feed(db, dataset, modules)


def _declared_datasets(modules: Iterable[Module]) -> list[Declared]:
    from smartcity.core.module import datasets

    return datasets(modules)


def _modules(db) -> list[Module]:
    context = getattr(db, "context", None)
    return list(context.modules) if context is not None else list(declared())


def refresh_all(db, only_due: bool = False) -> list[str]:
    """Publish each module dataset (only those marked by an event or stale, with `only_due`); lines saying
    what was done."""
    modules = _modules(db)
    with _lock:
        marked = _dirty.pop(db, {})
        started = _first_run.setdefault(db, time.monotonic())
    # A dataset never published waits for its first event, or for STALE_AFTER_S after the process started:
    # a process starting does not write to the store.
    fresh_process = time.monotonic() - started < STALE_AFTER_S
    lines = []
    for dataset in _declared_datasets(modules):
        if only_due and dataset.name not in marked and not _stale(db, dataset.name, fresh_process):
            continue
        keys = marked.get(dataset.name)
        try:
            by_key = only_due and keys and dataset.key and dataset.rows_by_key
            if by_key and not _stale(db, dataset.name, fresh_process):
                done = publish_feed_changes(db, dataset, modules, keys)
            else:
                done = publish_feed(db, dataset, modules)
        except Refused as exc:
            lines.append(f"{dataset.name}: refused: {exc.message}")
            continue
        except Exception:
            log.exception("refreshing %s failed", dataset.name)
            lines.append(f"{dataset.name}: failed")
            continue
        lines.append(
            f"{dataset.name}: unchanged"
            if done is None
            else f"{dataset.name}: version {done.version}, {done.rows} rows "
            f"(+{done.added} -{done.removed} ~{done.changed})"
        )
    return lines


def _stale(db, feed: str, fresh_process: bool) -> bool:
    with db.session() as s:
        found = s.execute(
            select(Dataset.id, Resource.modified_at)
            .outerjoin(Resource, Resource.dataset_id == Dataset.id)
            .where(Dataset.feed == feed)
        ).first()
    if found is None:
        return not fresh_process
    if found.modified_at is None:  # catalogued (the demo) and never published: due now
        return True
    return time.time() - found.modified_at.timestamp() > STALE_AFTER_S


def on_event(context, event) -> None:
    """Mark the datasets following the event's topic; the refresh job publishes them."""
    following = [d for d in _declared_datasets(context.modules) if any(event.topic.startswith(p) for p in d.events)]
    if not following:
        return
    with _lock:
        marked = _dirty.setdefault(context.db, {})
        for d in following:
            key = (event.data or {}).get(d.key) if d.key and d.rows_by_key else None
            if key is None or (d.name in marked and marked[d.name] is None):
                marked[d.name] = None  # every row
            else:
                marked.setdefault(d.name, set()).add(key)


def event_prefixes(modules: Iterable[Module]) -> list[str]:
    return sorted({p for d in _declared_datasets(modules) for p in d.events})


def setup(app, context) -> None:
    """Listen for the events the declared datasets follow."""
    for prefix in event_prefixes(context.modules):
        context.db.events.on(prefix, lambda event: on_event(context, event))
