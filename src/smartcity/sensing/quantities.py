"""The quantities a city sensor measures: a small code stored per reading, the name the wire formats use, the
unit, and the range outside which a value is impossible (a fault, not weather)."""

from __future__ import annotations

from dataclasses import dataclass

from smartcity.core.i18n import N_


@dataclass(frozen=True)
class Quantity:
    code: int
    name: str
    unit: str
    low: float
    high: float
    label: str  # English, for people; a msgid (pages show translate(language, label))


QUANTITIES: tuple[Quantity, ...] = (
    # Ranges: what the S-DoT sensors can express (its field list), widened to what the physics allows.
    Quantity(1, "pm10", "µg/m³", 0, 1500, N_("PM10 fine dust")),
    Quantity(2, "pm25", "µg/m³", 0, 1500, N_("PM2.5 ultrafine dust")),
    Quantity(3, "temperature", "°C", -50, 80, N_("air temperature")),
    Quantity(4, "humidity", "%", 0, 100, N_("relative humidity")),
    Quantity(5, "noise", "dB", 0, 140, N_("noise level")),
    Quantity(6, "illuminance", "lx", 0, 150_000, N_("illuminance")),
    Quantity(7, "wind", "m/s", 0, 100, N_("wind speed")),
    Quantity(8, "uv", "UV index", 0, 16, N_("ultraviolet index")),
    Quantity(9, "vibration", "mm/s", 0, 16, N_("vibration")),
)
BY_NAME: dict[str, Quantity] = {q.name: q for q in QUANTITIES}
BY_CODE: dict[int, Quantity] = {q.code: q for q in QUANTITIES}
# Names senders commonly use for the same quantities (Smart Data Models, plain spellings).
ALIASES: dict[str, str] = {"pm2.5": "pm25", "pm2_5": "pm25", "relativehumidity": "humidity", "windspeed": "wind"}


def quantity_named(name: object) -> Quantity | None:
    if not isinstance(name, str):
        return None
    key = name.strip().lower()
    return BY_NAME.get(ALIASES.get(key, key))
