"""The NGSI-LD broker's census (GET /types, /types/{type}, /attributes, /attributes/{attr}) over 100,000 stored
entities, on SQLite and PostgreSQL: the kept census (sensing_ngsi_census, what the routes read) against the
count over every entity's attributes the routes made before (scan_census), and what keeping it costs a batch
write of 1,000 entities (new ones; a value update of stored ones, which changes no count), beside the same
statements without the census. Then the registry's read-only types (`_registry`): their census counted by the
store against building every entity. BENCH_CENSUS_ONLY=registry runs that part alone.
"""

from __future__ import annotations

import os
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


def _registry(url: str, cameras: int, access_points: int, sensors: int) -> dict:
    """The registry's read-only types (Camera, AccessPoint, Device) in the census: counted by the store (what the
    routes read now) against building every entity (what they did before), at the safety bench's 110,000
    cameras, the city's Wi-Fi target of 23,000 access points (20,000 of them reporting, 10 reports each) and
    S-DoT's 850 sensors, bulk-inserted as the safety bench inserts its cameras."""
    from sqlalchemy import insert

    from smartcity.assets import service as assets
    from smartcity.assets.models import Asset
    from smartcity.core.db import Database, migrate, utcnow
    from smartcity.models import load_all
    from smartcity.sensing import ngsi_assets
    from smartcity.sensing.models import WifiStatus
    from smartcity.sensing.ngsi_entities import Census

    load_all()
    migrate(url)
    db = Database(url)
    rng = random.Random(110)
    now = utcnow()
    made = {"cctv": cameras, "wifi": access_points, "sensor": sensors}
    try:
        with db.session() as s:
            for kind, n in made.items():
                rows = [
                    {
                        "kind": kind,
                        "name": f"{kind} {i}",
                        "lat": rng.uniform(37.43, 37.69),
                        "lon": rng.uniform(126.8, 127.18),
                        "district_code": "11680" if i % 3 else None,
                        "attributes": {"place": "공원", "place_detail": "야외"} if kind == "wifi" else {},
                        "source": "bench",
                        "external_id": f"V{i:09d}" if kind == "sensor" else None,
                        "key": f"bench:{i}",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(n)
                ]
                for at in range(0, n, 20_000):
                    s.execute(insert(Asset), rows[at : at + 20_000])
        with db.session() as s:
            ids = list(s.scalars(assets.ids_of_kind("wifi")))[: access_points * 20 // 23]
            status = [
                {"access_point_id": i, "observed_at": 1_780_000_000 + 120 * k, "up": True, "clients": k}
                for i in ids
                for k in range(10)
            ]
            for at in range(0, len(status), 50_000):
                s.execute(insert(WifiStatus), status[at : at + 50_000])
        if db.is_postgres:
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql("VACUUM ANALYZE assets")
                c.exec_driver_sql("VACUUM ANALYZE sensing_wifi_status")

        def counted() -> Census:
            with db.session() as s:
                out = Census()
                ngsi_assets.census(s, out, None)
            return out

        def built() -> Census:
            with db.session() as s:
                out = Census()
                ngsi_assets.built_census(s, out, None)
            return out

        assert counted() == built()
        return {
            "cameras": cameras,
            "access_points": access_points,
            "reporting": len(ids),
            "sensors": sensors,
            "registry_census_ms": _ms(counted, 20),
            "registry_built_ms": _ms(built, 3),
        }
    finally:
        db.dispose()


def run(quick: bool = False) -> dict:
    from tests.servers import PostgresServer

    n = 5_000 if quick else 100_000
    registry = (2_000, 500, 85) if quick else (110_000, 23_000, 850)
    only_registry = os.environ.get("BENCH_CENSUS_ONLY") == "registry"
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not only_registry:
            out["sqlite"] = _run(f"sqlite:///{Path(tmp) / 'census.db'}", n)
        out["sqlite_registry"] = _registry(f"sqlite:///{Path(tmp) / 'registry.db'}", *registry)
    pg = PostgresServer().start()
    try:
        if not only_registry:
            pg.execute("CREATE DATABASE census")
            out["postgresql"] = _run(pg.url("census"), n)
        pg.execute("CREATE DATABASE registry")
        out["postgresql_registry"] = _registry(pg.url("registry"), *registry)
    finally:
        pg.stop()
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=os.environ.get("BENCH_QUICK") == "1"), indent=2))
