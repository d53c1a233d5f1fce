"""Sensors are assets of kind `sensor` in the assets module's registry (position, district, the serial as the
asset's external id): this module reads and adds them only through the assets service's exported functions."""

from __future__ import annotations

from sqlalchemy.orm import Session

from smartcity.assets import service as assets

KIND = "sensor"
SDOT_SOURCE = "S-DoT"
MOST = 1_000_000


def sensor_serials(session: Session) -> dict[str, int]:
    """Serial → the sensor's asset id, for every registered sensor with a serial."""
    return {a.external_id: a.id for a in assets.list_assets(session, kind=KIND, limit=MOST) if a.external_id}


def import_sensor_list(session: Session, data: bytes, *, source: str = SDOT_SOURCE, actor="cli"):
    """The S-DoT sensor list (시리얼, 위도, 경도; UTF-8 or CP949) as assets of kind `sensor`: the assets
    import's report (rows skipped with their reasons: no serial, bad or outside-the-city coordinates, a
    repeated serial). Re-importing the same list changes nothing."""
    return assets.import_csv(session, data, KIND, source=source, fmt="sdot", actor=actor)


def sensors(session: Session, district: str | None = None) -> list[dict]:
    """The registered sensors as plain rows (id, serial, position, district)."""
    return [
        {
            "id": a.id,
            "serial": a.external_id,
            "name": a.name,
            "lat": a.lat,
            "lon": a.lon,
            "district": a.district_code,
        }
        for a in assets.list_assets(session, kind=KIND, district=district, limit=MOST)
    ]
