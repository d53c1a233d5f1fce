"""The suite without the real Seoul files: where they are looked for, the synthetic stand-ins, and a run
that must pass and say plainly that the real-data tests did not run."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from shapely.geometry import shape

from smartcity.core import geo
from tests import synthetic

ROOT = Path(__file__).resolve().parents[1]


def test_the_variable_is_the_only_place_looked_at_when_set(monkeypatch, tmp_path):
    monkeypatch.setenv(synthetic.REAL_DATA_ENV, str(tmp_path))
    assert synthetic.real_data_dir() == (tmp_path.resolve(), "")
    for missing in (str(tmp_path / "nowhere"), ""):
        monkeypatch.setenv(synthetic.REAL_DATA_ENV, missing)
        path, why = synthetic.real_data_dir()
        assert path is None and synthetic.REAL_DATA_ENV in why
    monkeypatch.delenv(synthetic.REAL_DATA_ENV)
    path, why = synthetic.real_data_dir()
    if synthetic.DEFAULT_REAL_DATA.is_dir():  # beside the checkout, as in CI
        assert path == synthetic.DEFAULT_REAL_DATA
    else:
        assert path is None and "not found" in why


def test_synthetic_boundaries_are_a_valid_partition_of_the_city():
    districts = synthetic.districts()
    areas = geo.parse_boundaries(json.dumps(districts), synthetic.SEOUL)  # refuses any invalid polygon
    outline = synthetic.SEOUL.outline_polygon
    assert sum(a.geometry.area for a in areas) == pytest.approx(outline.area, rel=1e-3)
    for seed, area in zip(synthetic.SEOUL.districts, areas, strict=True):
        assert area.code == seed.code
    hoods = geo.parse_boundaries(json.dumps(synthetic.neighbourhoods(districts)), synthetic.SEOUL)
    by_code = {a.code: a.geometry for a in areas}
    for hood in hoods:
        assert by_code[hood.code[:5]].buffer(1e-4).contains(hood.geometry), hood.code
    detailed = synthetic.detailed(districts)
    vertices = sum(
        len(shape(f["geometry"]).boundary.coords)
        if f["geometry"]["type"] == "Polygon"
        else sum(len(g.boundary.coords) for g in shape(f["geometry"]).geoms)
        for f in detailed["features"]
    )
    assert 20_000 < vertices < 30_000


def test_a_run_without_the_real_files_passes_and_says_so(tmp_path):
    """What a bare clone's `make test` does: the real-data tests are skipped with the reason, the run
    passes, and pytest's own summary stays the last line (CI reads it)."""
    env = {**os.environ, synthetic.REAL_DATA_ENV: str(tmp_path / "no-such-folder")}
    env.pop("SMARTCITY_REQUIRE_REAL_DATA", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/core/test_geo.py",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "not postgres",
            "-W",
            "ignore",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout[-3000:]
    said = [line for line in lines if "real-data tests NOT run" in line]
    assert len(said) == 1 and "no-such-folder" in said[0] and re.search(r"; \d+ skipped", said[0])
    assert lines.index(said[0]) < len(lines) - 1
    assert re.fullmatch(r"=*\s*\d+ passed, \d+ skipped, \d+ deselected in [\d.]+s( \([\d:]+\))?\s*=*", lines[-1])

    env.pop(synthetic.REAL_DATA_ENV)
    env["SMARTCITY_REQUIRE_REAL_DATA"] = "1"
    env[synthetic.REAL_DATA_ENV] = ""
    required = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/core/test_geo.py", "-q", "-p", "no:cacheprovider", "--collect-only"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert required.returncode != 0 and "SMARTCITY_REQUIRE_REAL_DATA" in required.stdout + required.stderr
