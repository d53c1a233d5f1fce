"""How the audit page tells the assets module's entries (core.audit.AuditWords, Module.audit)."""

from __future__ import annotations

from typing import Any

from smartcity.core.audit import AuditWords
from smartcity.core.i18n import N_, gettext

KIND_NAMES = {
    "cctv": N_("CCTV cameras"),
    "wifi": N_("public Wi-Fi points"),
    "air_sensor": N_("air quality sensors"),
    "noise_sensor": N_("noise sensors"),
    "sensor": N_("urban sensors"),
    "streetlight": N_("street lights"),
    "other": N_("other equipment"),
}


def _kind(language: str, value: Any) -> str | None:
    return gettext(language, KIND_NAMES[value]) if value in KIND_NAMES else None


WORDS = AuditWords(
    subjects={"asset": N_("asset"), "assets": N_("the asset register")},
    # A count per kind, as the demo and imports record it: the key is the kind.
    keys=dict(KIND_NAMES),
    values={"asset:kind": _kind},
)
