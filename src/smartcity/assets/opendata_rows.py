"""u-Seoul Net's open dataset (declared in assets' `module.datasets`, published by opendata): every city
asset — CCTV cameras, Wi-Fi access points, sensors — with its kind, position and district. Contact fields
the official lists carry (a managing office's phone) are left out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.assets.models import Asset


def assets(session: Session) -> Iterator[dict[str, Any]]:
    for asset in session.scalars(select(Asset).order_by(Asset.id)):
        yield {
            "id": asset.id,
            "kind": asset.kind,
            "name": asset.name,
            "lat": asset.lat,
            "lon": asset.lon,
            "district_code": asset.district_code,
            "source": asset.source,
            "updated_at": asset.updated_at.astimezone(UTC).replace(tzinfo=None) if asset.updated_at else None,
        }
