"""The safety service's domain: the registry (persons, devices, guardians with consent, zones), alerts,
the control-room incident workflow, privacy-checked location reads, retention and the periodic checks.

No HTTP here. Pages, the JSON API, the protocol adapters and the CLI all call these functions.
The intake of positions itself is the hot path in `engine.py`.

Location privacy, enforced by `location_access` (every read function goes through it):
  * a guardian of the person whose link carries a recorded (not revoked) consent may read;
  * an operator of the control room of the district where an open (not yet resolved) incident for the
    person was raised may read, from the hour before the incident was opened, until it is resolved;
  * nobody else — administrators included (they manage the registry, they do not follow people).
The same rule (`location_rule`) decides the REST reads, the zone reads (a child's home and school are
locations) and the live events (`live_admission`, which core's event stream asks for every
`safety.position`, `safety.alert` and `safety.incident.*` event, whatever else the subscriber may do).
Every read is audited (`read_location`, `read_track`, `read_incident`, `read_alerts`, `read_zones`,
`read_live`); every refusal is audited too (`location_denied`, in its own transaction, since the
caller's is rolled back).

This module is the service's one public surface; the code lives in the package's modules, by seam:
`registry` (persons, devices, their secrets), `consent` (guardian links, consent, withdrawal, history
deletion), `access` (the location rule, the guardian check, live admission), `zones`, `alerts` (events,
cool-down and digests, live positions), `incidents` (the control-room workflow), `reads` (the audited
reads), `retention` (the periodic checks), `demo`, and `common` (kinds, change events).
"""

from __future__ import annotations

from smartcity.safety.access import (
    LIVE_FACTS_TTL_S,
    Access,
    LocationFacts,
    check_guardian,
    guardian_ids,
    live_admission,
    location_access,
    location_facts,
    location_rule,
)
from smartcity.safety.alerts import (
    COOLDOWN_KINDS,
    DIGEST,
    MESSAGES,
    event_to_dict,
    publish_live,
    raise_event,
    send_alert_digests,
)
from smartcity.safety.common import (
    AGENCIES,
    EVENT_KINDS,
    INCIDENT_FLOW,
    INCIDENT_KINDS,
    OPERATOR_LOOKBACK,
    PERSON_KINDS,
)
from smartcity.safety.consent import (
    delete_history,
    link_guardian,
    record_consent,
    revoke_consent,
    withdraw_as_guardian,
    withdraw_consent,
)
from smartcity.safety.demo import DEMO_DANGER, DEMO_HOME, DEMO_ROUTES, DEMO_SCHOOL, demo, simulated_position, walk
from smartcity.safety.incidents import (
    acknowledge,
    control_room_code,
    dispatch,
    incident_counts,
    incident_to_dict,
    list_incidents,
    nearest_cameras,
    open_incident,
    resolve,
)
from smartcity.safety.reads import alerts, current_position, incident_view, track, wards, zone_view
from smartcity.safety.registry import (
    add_device,
    add_person,
    devices,
    find_device,
    get_person,
    persons,
    remove_device,
    renew_ward_device_secret,
    reset_device_secret,
    ward_devices,
)
from smartcity.safety.retention import check_absence, check_silent, purge_history
from smartcity.safety.zones import (
    ZoneIn,
    add_zone,
    delete_zone,
    remove_zone,
    save_zone,
    update_zone,
    zone_to_dict,
    zones,
)

__all__ = [
    "AGENCIES",
    "Access",
    "COOLDOWN_KINDS",
    "DEMO_DANGER",
    "DEMO_HOME",
    "DEMO_ROUTES",
    "DEMO_SCHOOL",
    "DIGEST",
    "EVENT_KINDS",
    "INCIDENT_FLOW",
    "INCIDENT_KINDS",
    "LIVE_FACTS_TTL_S",
    "LocationFacts",
    "MESSAGES",
    "OPERATOR_LOOKBACK",
    "PERSON_KINDS",
    "ZoneIn",
    "acknowledge",
    "add_device",
    "add_person",
    "add_zone",
    "alerts",
    "check_absence",
    "check_guardian",
    "check_silent",
    "control_room_code",
    "current_position",
    "delete_history",
    "delete_zone",
    "demo",
    "devices",
    "dispatch",
    "event_to_dict",
    "find_device",
    "get_person",
    "guardian_ids",
    "incident_counts",
    "incident_to_dict",
    "incident_view",
    "link_guardian",
    "list_incidents",
    "live_admission",
    "location_access",
    "location_facts",
    "location_rule",
    "nearest_cameras",
    "open_incident",
    "persons",
    "publish_live",
    "purge_history",
    "raise_event",
    "record_consent",
    "remove_device",
    "remove_zone",
    "renew_ward_device_secret",
    "reset_device_secret",
    "resolve",
    "revoke_consent",
    "save_zone",
    "send_alert_digests",
    "simulated_position",
    "track",
    "update_zone",
    "walk",
    "ward_devices",
    "wards",
    "withdraw_as_guardian",
    "withdraw_consent",
    "zone_to_dict",
    "zone_view",
    "zones",
]
