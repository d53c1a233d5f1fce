"""The city profile: what differs between cities (names, extent, languages, time zone, districts, units).

Seoul is the default profile; another city is another TOML file (SMARTCITY_CITY=/path/to/city.toml).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from shapely.geometry import Polygon

from smartcity.core.errors import InvalidInput
from smartcity.core.i18n import localized

BUNDLED = Path(__file__).parent.parent / "cities"


@dataclass(frozen=True)
class DistrictSeed:
    code: str
    name_ko: str
    name_en: str
    point: tuple[float, float]  # lat, lon


@dataclass(frozen=True)
class UnitSeed:
    code: str
    name_ko: str
    name_en: str
    kind: str = "department"
    district_code: str | None = None


@dataclass(frozen=True)
class CityProfile:
    key: str
    name_ko: str
    name_en: str
    language: str
    languages: tuple[str, ...]
    timezone: str
    bbox: tuple[float, float, float, float]  # west, south, east, north
    center: tuple[float, float]
    zoom: int
    outline: tuple[tuple[float, float], ...]
    districts: tuple[DistrictSeed, ...]
    units: tuple[UnitSeed, ...] = field(default=())
    labels: dict = field(default_factory=dict)
    # The unit that takes what no other unit covers (Seoul: its 120 call centre); None: the city has none.
    fallback_unit: str | None = None
    # The district the demo's unit-bound accounts and denser demo data belong to; None: the first district.
    demo_district: str | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def outline_polygon(self) -> Polygon:
        return Polygon(self.outline)

    def name(self, language: str) -> str:
        return localized(self, "name", language, self.language)


def _expand_units(data: dict) -> tuple[UnitSeed, ...]:
    units = [UnitSeed(**u) for u in data.get("departments", [])]
    for district in data.get("districts", []):
        for template in data.get("district_departments", []):
            names = {k: district[k] for k in ("code", "name_ko", "name_en")}
            units.append(
                UnitSeed(
                    code=template["code"].format(**names),
                    name_ko=template["name_ko"].format(**names),
                    name_en=template["name_en"].format(**names),
                    kind=template.get("kind", "department"),
                    district_code=district["code"],
                )
            )
    return tuple(units)


@cache
def load_profile(name_or_path: str) -> CityProfile:
    """Load a bundled profile by name or a profile TOML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = BUNDLED / f"{name_or_path}.toml"
    if not path.exists():
        raise InvalidInput(f"no city profile {name_or_path!r} (looked for {path})", code="unknown_city")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    languages = tuple(data.get("languages", ["en"]))
    units = _expand_units(data)
    fallback = data.get("fallback_unit") or None
    # Checked here so a misspelt unit stops the platform at start-up instead of refusing reports later.
    if fallback is not None and fallback not in {u.code for u in units}:
        raise InvalidInput(
            f"city profile {path}: fallback_unit {fallback!r} is not one of its departments", code="unknown_unit"
        )
    demo = data.get("demo_district") or None
    if demo is not None and demo not in {d["code"] for d in data["districts"]}:
        raise InvalidInput(
            f"city profile {path}: demo_district {demo!r} is not one of its districts", code="unknown_district"
        )
    return CityProfile(
        key=path.stem,
        name_ko=data["name_ko"],
        name_en=data["name_en"],
        language=data.get("language", "en"),
        languages=languages,
        timezone=data.get("timezone", "UTC"),
        bbox=tuple(data["bbox"]),
        center=tuple(data["center"]),
        zoom=int(data.get("zoom", 11)),
        outline=tuple(tuple(p) for p in data["outline"]),
        districts=tuple(
            DistrictSeed(d["code"], d["name_ko"], d["name_en"], tuple(d["point"])) for d in data["districts"]
        ),
        units=units,
        labels={k: v for k, v in data.items() if "_label_" in k and k.rsplit("_", 1)[1] in languages},
        fallback_unit=fallback,
        demo_district=demo,
    )
