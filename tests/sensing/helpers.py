"""Helpers the sensing tests share (fixtures are in conftest.py)."""

from __future__ import annotations

from smartcity.core.geo import geo_index
from smartcity.sensing import coverage
from tests import synthetic


def stops_away_from(db, aps, n: int, gap_m: float = 300.0) -> list[tuple[float, float]]:
    """`n` stops 33 m apart in a row, all in Gangnam and each at least `gap_m` from every access point."""
    plane = coverage.Plane(synthetic.SEOUL.center)
    lat0 = sum(a.lat for a in aps) / len(aps)
    lon0 = sum(a.lon for a in aps) / len(aps)
    index = geo_index(db)
    sites = [coverage.Site(a.lat, a.lon, gap_m) for a in aps]
    for dy in range(-20, 21):
        for dx in range(-20, 21):
            row = [(lat0 + dy * 0.001 + 0.0003 * i, lon0 + dx * 0.001) for i in range(n)]
            if not all(getattr(index.district_at(la, lo), "code", None) == synthetic.GANGNAM for la, lo in row):
                continue
            if not coverage.covered_mask(plane, sites, [coverage.DemandPoint("", "", la, lo) for la, lo in row]).any():
                return row
    raise AssertionError(f"no place in Gangnam {gap_m} m from every access point")
