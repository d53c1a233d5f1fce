"""The store's context: settings and profile read once, and typed slots for per-process state derived from
the store (indexes, the writer, caches) in place of string keys."""

from __future__ import annotations

import threading

from smartcity.core.context import AppContext, Slot, attach, context_of
from smartcity.core.db import Database
from smartcity.core.events import publish
from smartcity.core.geo import GEO_INDEX, geo_index
from smartcity.core.writer import writer
from tests.conftest import eventually, make_settings


def test_a_slot_is_built_once_per_store_even_when_asked_from_many_threads(db):
    built: list[AppContext] = []

    def build(context: AppContext) -> object:
        built.append(context)
        return object()

    slot: Slot[object] = Slot("test.once", build)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(slot.get(db))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and built[0] is context_of(db)
    assert all(g is got[0] for g in got)
    other = Database(db.url)
    try:
        assert slot.get(other) is not got[0]  # another store, its own value
    finally:
        other.dispose()


def test_a_slot_is_forgotten_when_its_event_arrives_from_another_process(db, tmp_path):
    """An event another process publishes (here another Database on the same store) drops the slot here."""
    from fastapi.testclient import TestClient

    from smartcity.app import create_app

    app = create_app(make_settings(db.url, tmp_path), db)
    generation = iter(range(100))
    slot: Slot[int] = Slot("test.generation", lambda context: next(generation), invalidated_by="test.changed")
    with TestClient(app):
        assert db.events.listening.wait(10)
        first = slot.get(db)
        assert slot.get(db) == first
        elsewhere = Database(db.url)
        try:
            with elsewhere.session() as s:
                publish(s, "test.changed", {})
        finally:
            elsewhere.dispose()
        eventually(lambda: slot.get(db) != first)


def test_the_stores_index_and_writer_live_in_its_context(db, tmp_path):
    attach(db, make_settings(db.url, tmp_path))
    index = geo_index(db)
    assert GEO_INDEX.get(db) is index and geo_index(db) is index
    GEO_INDEX.drop(db)
    assert geo_index(db) is not index  # rebuilt
    assert writer(db) is writer(db)  # one writer per store
