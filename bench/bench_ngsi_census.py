"""The NGSI-LD broker's census (GET /types, /types/{type}, /attributes, /attributes/{attr}) over 100,000 stored
entities, on SQLite and PostgreSQL: the kept census (sensing_ngsi_census, what the routes read) against the
count over every entity's attributes the routes made before (scan_census), and what keeping it costs a batch
write of 1,000 entities (new ones; a value update of stored ones, which changes no count), beside the same
statements without the census.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

TYPES = ("Streetlight", "Cabinet", "WasteContainer", "ParkingSpot", "Bench")
NAMES = ("level", "owner", "status", "fillingLevel", "occupancy", "note", "refCabinet", "address")


def _entities(rng: random.Random, start: int, n: int):
    from smartcity.sensing import ngsi_entities as store

    out = []
    for i in range(start, start + n):
        etype = TYPES[i % len(TYPES)]
        attrs = {
            "location": {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [rng.uniform(126.8, 127.18), rng.uniform(37.43, 37.69)]},
            }
        }
        for name in rng.sample(NAMES, rng.randint(2, 6)):
            if name.startswith("ref"):
                attrs[name] = {"type": "Relationship", "object": f"urn:ngsi-ld:Cabinet:c{rng.randint(0, 999)}"}
            else:
                attrs[name] = {"type": "Property", "value": rng.randint(0, 100)}
        out.append(store.Entity(f"urn:ngsi-ld:{etype}:b{i}", etype, attrs))
    return out


def _ms(fn, times: int) -> float:
    took = []
    for _ in range(times):
        t0 = time.perf_counter()
        fn()
        took.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(took), 2)


def _old_upsert(session, entities) -> None:
    """The write before the census: one upsert statement, nothing else."""
    from smartcity.sensing import ngsi_entities as store
    from smartcity.sensing.ngsi_store import NgsiEntity

    stmt = store._insert(session)(NgsiEntity)
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"], set_={c: stmt.excluded[c] for c in ("type", "attrs", "lat", "lon", "modified_at")}
    )
    session.execute(stmt, [store._row(e) for e in entities])


def _run(url: str, n: int) -> dict:
    from smartcity.core.db import Database, migrate
    from smartcity.sensing import ngsi_entities as store

    migrate(url)
    db = Database(url)
    rng = random.Random(16)
    try:
        t0 = time.perf_counter()
        for at in range(0, n, 1000):
            with db.session() as s:
                store.insert_new(s, _entities(rng, at, min(1000, n - at)))
        loaded = time.perf_counter() - t0

        def kept(types=None):
            with db.session() as s:
                return store.census(s, None, types)

        def scanned(types=None):
            with db.session() as s:
                return store.scan_census(s, None, types)

        assert kept() == scanned()
        out = {
            "entities": n,
            "load_s_with_census": round(loaded, 1),
            "census_all_ms": _ms(kept, 20),
            "scan_all_ms": _ms(scanned, 3),
            "census_one_type_ms": _ms(lambda: kept(["Cabinet"]), 20),
            "scan_one_type_ms": _ms(lambda: scanned(["Cabinet"]), 3),
        }
        # Value updates of 1,000 stored entities (same attribute names and types: no count changes).
        batch = _entities(random.Random(17), 0, 1000)
        fresh = iter(range(10))

        def upsert_kept():
            with db.session() as s:
                store.upsert(s, batch)

        def upsert_old():
            with db.session() as s:
                _old_upsert(s, batch)

        def insert_kept():
            with db.session() as s:
                store.insert_new(s, _entities(random.Random(18), n + 1000 * (2 * next(fresh)), 1000))

        def insert_old():
            with db.session() as s:
                store._insert_rows(s, _entities(random.Random(18), n + 1000 * (2 * next(fresh) + 1), 1000))

        out["upsert_1000_ms_with_census"] = _ms(upsert_kept, 5)
        out["upsert_1000_ms_without"] = _ms(upsert_old, 5)
        out["insert_1000_ms_with_census"] = _ms(insert_kept, 5)
        fresh = iter(range(10))
        out["insert_1000_ms_without"] = _ms(insert_old, 5)
        return out
    finally:
        db.dispose()


def run(quick: bool = False) -> dict:
    from tests.servers import PostgresServer

    n = 5_000 if quick else 100_000
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = _run(f"sqlite:///{Path(tmp) / 'census.db'}", n)
    pg = PostgresServer().start()
    try:
        pg.execute("CREATE DATABASE census")
        out["postgresql"] = _run(pg.url("census"), n)
    finally:
        pg.stop()
    return out


if __name__ == "__main__":
    import json
    import os

    print(json.dumps(run(quick=os.environ.get("BENCH_QUICK") == "1"), indent=2))
