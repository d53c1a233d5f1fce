"""Nearest assets in memory: a k-d tree per kind on the city's metric plane (a transverse Mercator projection
centred on the city, so distances are true to well under 0.01 % across Seoul), built once per process and
dropped when an `assets.changed` event arrives (from this process or, on PostgreSQL, any other)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from pyproj import Geod, Transformer
from scipy.spatial import cKDTree
from sqlalchemy import select

from smartcity.assets.models import Asset
from smartcity.core.context import Slot
from smartcity.core.geo import transverse_mercator as city_plane


@dataclass(frozen=True)
class AssetRef:
    """What the nearest-asset index keeps of an asset (no attributes: 110,000 cameras stay small)."""

    id: int
    kind: str
    name: str
    lat: float
    lon: float
    district_code: str | None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "lat": self.lat,
            "lon": self.lon,
            "district": self.district_code,
        }


class KindIndex:
    """A k-d tree over one kind's assets on the city's metric plane."""

    def __init__(self, refs: list[AssetRef], plane: Transformer):
        self.refs = refs
        self.plane = plane
        if refs:
            xs, ys = plane.transform(np.array([r.lon for r in refs]), np.array([r.lat for r in refs]))
            self.tree: cKDTree | None = cKDTree(np.column_stack([xs, ys]))
        else:
            self.tree = None

    def nearest(self, lat: float, lon: float, k: int) -> list[tuple[AssetRef, float]]:
        if self.tree is None or k <= 0:
            return []
        k = min(k, len(self.refs))
        x, y = self.plane.transform(lon, lat)
        dist, idx = self.tree.query((x, y), k=k)
        if k == 1:
            dist, idx = [dist], [idx]
        return [(self.refs[int(i)], float(d)) for d, i in zip(dist, idx, strict=True)]


class AssetIndex:
    """Per-process nearest-asset lookups: one k-d tree per kind, built on first use."""

    def __init__(self, db, center: tuple[float, float]):
        self.db = db
        self.plane = city_plane(center)
        self._kinds: dict[str, KindIndex] = {}
        self._lock = threading.Lock()

    def kind(self, kind: str) -> KindIndex:
        index = self._kinds.get(kind)
        if index is None:
            with self._lock:
                index = self._kinds.get(kind)
                if index is None:
                    index = KindIndex(self._load(kind), self.plane)
                    self._kinds[kind] = index
        return index

    def _load(self, kind: str) -> list[AssetRef]:
        cols = (Asset.id, Asset.name, Asset.lat, Asset.lon, Asset.district_code)
        with self.db.session() as s:
            rows = s.execute(select(*cols).where(Asset.kind == kind).order_by(Asset.id)).all()
        return [AssetRef(r.id, kind, r.name, r.lat, r.lon, r.district_code) for r in rows]


# The process's index, rebuilt after any `assets.changed` event (a change here, or in another process).
INDEX = Slot(
    "assets.index", lambda context: AssetIndex(context.db, context.profile.center), invalidated_by="assets.changed"
)


def asset_index(db) -> AssetIndex:
    """The process's index for `db`; it follows `assets.changed` events from then on."""
    return INDEX.get(db)


def invalidate(db) -> None:
    """Forget the index (assets changed here or in another process); the next query rebuilds it."""
    INDEX.drop(db)


def nearest_brute_force(refs: Iterable[AssetRef], lat: float, lon: float, k: int) -> list[tuple[AssetRef, float]]:
    """The reference answer (ellipsoidal geodesic distances to every asset): for tests and sanity checks."""
    refs = list(refs)
    if not refs:
        return []
    _, _, dist = _GEOD.inv(
        np.full(len(refs), lon),
        np.full(len(refs), lat),
        np.array([r.lon for r in refs]),
        np.array([r.lat for r in refs]),
    )
    order = np.argsort(dist, kind="stable")[:k]
    return [(refs[int(i)], float(dist[int(i)])) for i in order]


_GEOD = Geod(ellps="GRS80")
