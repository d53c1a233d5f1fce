"""The safety intake engine alone (no HTTP, no writer process): positions stored per second and CPU time per
position, in batches the size an OsmAnd load gives (~250) and a gateway gives (10,000), on the world of
bench_safety_intake (100,000 devices × 3 zones; 2,000 quick), SQLite WAL.

This is where the intake's storing cost is seen without the serving process beside it: the writer process
runs exactly this engine. Also runnable alone with a profiler:

    python -m bench.bench_safety_engine [quick]
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.bench_safety_intake import BOX, build


def _positions(n_devices: int, count: int, start: datetime, rng: random.Random):
    from smartcity.safety.engine import Position

    out = []
    for i in range(count):
        out.append(
            Position(
                f"bench-{rng.randrange(n_devices)}",
                start + timedelta(milliseconds=i * 7),
                rng.uniform(BOX[0], BOX[2]),
                rng.uniform(BOX[1], BOX[3]),
                speed=1.0,
                bearing=90.0,
                altitude=30.0,
                accuracy=10.0,
                battery=80.0,
                protocol="osmand",
            )
        )
    return out


def _feed(engine, positions: list, batch: int) -> tuple[float, float]:
    """Validate, queue and write `positions` `batch` at a time; (wall seconds, CPU seconds)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(positions), batch):
        future = engine.submit_all(positions[start : start + batch])
        while engine.write_queued():
            pass
        future.result(0)
    return time.perf_counter() - t0, time.process_time() - c0


def run(quick: bool = False) -> dict:
    from smartcity.core.db import Database
    from smartcity.safety.engine import SafetyEngine
    from smartcity.settings import get_settings

    n = 2_000 if quick else 100_000
    total = 20_000 if quick else 300_000
    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    url = f"sqlite:///{tmp}/bench.db"
    try:
        build(url, n, 0, 0, 0)
        db = Database(url)
        engine = SafetyEngine(db, get_settings(), background_checkpoints=True)
        engine.start(writer_thread=False)
        rng = random.Random(5)
        start = datetime.now(UTC) - timedelta(days=3)
        results = {"devices": n, "zones": 3 * n, "store": "sqlite"}
        warm = _positions(n, min(total, 100_000), start - timedelta(hours=12), rng)
        _feed(engine, warm, 1000)  # every device has a state and some stored positions
        for batch in (250, 10_000):
            positions = _positions(n, total, start + timedelta(hours=1 + batch // 1000), rng)
            wall, cpu = _feed(engine, positions, batch)
            results[f"batch_{batch}"] = {
                "positions": total,
                "positions_per_second": round(total / wall),
                "cpu_us_per_position": round(cpu / total * 1e6, 1),
            }
        engine.stop()
        db.dispose()
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import json

    print(json.dumps(run("quick" in sys.argv[1:]), indent=2))
