"""Run the benchmarks under bench/ and write machine-readable results to bench/results/<name>.json.

python -m bench                 every benchmark
python -m bench geo reports     only those whose file name contains one of the words
BENCH_QUICK=1 python -m bench   small sizes (a smoke run; results marked quick)
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def main(argv: list[str]) -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if argv:
        names = [n for n in names if any(word in n for word in argv)]
    RESULTS.mkdir(exist_ok=True)
    failed = 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            result = module.run(quick=quick)
        except Exception as exc:  # report and go on with the others
            print(f"   FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed += 1
            continue
        record = {
            "benchmark": name,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": quick,
            "seconds": round(time.perf_counter() - started, 1),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
            "results": result,
        }
        (RESULTS / f"{name.removeprefix('bench_')}.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
        print(json.dumps(result, indent=2, ensure_ascii=False), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
