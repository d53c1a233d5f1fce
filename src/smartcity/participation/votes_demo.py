"""The demo's vote (`smartcity demo`)."""

from __future__ import annotations

from collections.abc import Iterator

from smartcity.core.city import CityProfile


def load(db, profile: CityProfile) -> Iterator[str]:
    yield "demo vote: none yet"
