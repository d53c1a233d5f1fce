"""How the audit page tells the safety service's entries (core.audit.AuditWords, Module.audit). The names of
kinds and steps are the msgids the safety pages already show (templates/safety/_labels.html)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smartcity.core.audit import AuditWords
from smartcity.core.i18n import N_, gettext

PERSON_KINDS = {"child": N_("Child"), "elderly": N_("Elderly person"), "dementia": N_("Person with dementia")}
INCIDENT_KINDS = {"sos": N_("SOS"), "danger": N_("Danger zone")}
ZONE_KINDS = {"danger": N_("danger zone"), "safe": N_("safe zone")}
AGENCIES = {"112": N_("112 police"), "119": N_("119 fire and rescue")}
ACCESS = {
    "guardian": N_("as a guardian"),
    "operator": N_("as a control room operator"),
    "admin": N_("as an administrator"),
}
PROTOCOLS = {"osmand": "Traccar Client", "owntracks": "OwnTracks"}


def _named(table: Mapping[str, str]):
    def describe(language: str, value: Any) -> str | None:
        return gettext(language, table[value]) if value in table else None

    return describe


def _protocols(language: str, value: Any) -> str | None:
    # App names are the same in every language.
    names = [PROTOCOLS.get(p.strip(), p.strip()) for p in str(value).split(",") if p.strip()]
    return ", ".join(names) or None


WORDS = AuditWords(
    subjects={
        "safety_person": N_("protected person"),
        "safety_device": N_("location device"),
        "safety_zone": N_("zone"),
        "safety_guardian": N_("guardian link"),
        "safety_incident": N_("incident"),
        "safety_incidents": N_("the district's incidents"),
        "safety_positions": N_("old locations"),
    },
    actions={
        "open": N_("{actor} opened {subject}"),
        "acknowledged": N_("{actor} took {subject}"),
        "dispatched": N_("{actor} dispatched help for {subject}"),
        "resolved": N_("{actor} resolved {subject}"),
        "resolve_refused": N_("{actor} was refused closing {subject}"),
        "consent": N_("{actor} recorded consent for {subject}"),
        "revoke_consent": N_("{actor} revoked the consent of {subject}"),
        "withdraw_consent": N_("{actor} withdrew the consent of {subject}"),
        "read_zones": N_("{actor} read the zones of {subject}"),
        "read_track": N_("{actor} read the location history of {subject}"),
        "read_incident": N_("{actor} read {subject}"),
        "read_incidents": N_("{actor} read the incidents of {subject}"),
        "read_alerts": N_("{actor} read the alerts of {subject}"),
        "read_contacts": N_("{actor} read the guardians' contact details for {subject}"),
        "read_consents": N_("{actor} read the consents of {subject}"),
        "delete_history": N_("{actor} deleted the location history of {subject}"),
        "reset_secret": N_("{actor} issued a new secret for {subject}"),
        "deactivate": N_("{actor} switched off {subject}"),
        "device_refused": N_("{actor} refused positions from {subject}"),
        "purge": N_("{actor} erased {subject}"),
        "digest": N_("{actor} sent the alert digest of {subject}"),
        "alert_preferences": N_("{actor} changed the alert settings of {subject}"),
    },
    actors={
        "safety": N_("the safety service"),
        "safety.intake": N_("the location intake"),
        "job:safety.retention": N_("the location retention job"),
        "job:safety.alert_digests": N_("the alert digest job"),
    },
    keys={
        "person_id": N_("protected person"),
        "user_id": N_("account"),
        "given_by": N_("given by"),
        "basis": N_("basis"),
        "identifier": N_("device identifier"),
        "protocols": N_("app"),
        "secret": N_("secret issued"),
        "district": N_("district"),
        "as": N_("access"),
        "zones": N_("zones"),
        "incidents": N_("incidents"),
        "persons": N_("persons"),
        "dispatch_agency": N_("agency"),
        "dispatch_reference": N_("reference"),
        "dispatch_notes": N_("notes"),
        "resolution": N_("resolution"),
    },
    values={
        "safety_person:kind": _named(PERSON_KINDS),
        "safety_incident:kind": _named(INCIDENT_KINDS),
        "safety_zone:kind": _named(ZONE_KINDS),
        "dispatch_agency": _named(AGENCIES),
        "as": _named(ACCESS),
        "protocols": _protocols,
    },
)
