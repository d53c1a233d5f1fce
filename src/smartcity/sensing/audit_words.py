"""How the audit page tells the sensing module's entries (core.audit.AuditWords, Module.audit)."""

from __future__ import annotations

from smartcity.core.audit import AuditWords
from smartcity.core.i18n import N_

WORDS = AuditWords(
    subjects={
        "sensing_readings": N_("sensor readings"),
        "sensing_air_subscription": N_("air quality alert subscription"),
        "sensing_air_district": N_("the district's air quality alert"),
        "ngsi_entity": N_("context entity"),
        "ngsi_subscription": N_("context subscription"),
        "ngsi_census": N_("the context broker's census of types and attributes"),
    },
    actions={
        "import": N_("{actor} imported {subject}"),
        "subscribe": N_("{actor} subscribed to {subject}"),
        "unsubscribe": N_("{actor} ended {subject}"),
        "notify": N_("{actor} sent {subject}"),
        "ngsi.create": N_("{actor} created {subject}"),
        "ngsi.upsert": N_("{actor} created or replaced {subject}"),
        "ngsi.update": N_("{actor} updated {subject}"),
        "ngsi.append": N_("{actor} added attributes to {subject}"),
        "ngsi.delete": N_("{actor} deleted {subject}"),
        "ngsi.delete_attribute": N_("{actor} deleted an attribute of {subject}"),
        "ngsi.subscribe": N_("{actor} created {subject}"),
        "ngsi.subscription_update": N_("{actor} changed {subject}"),
        "ngsi.unsubscribe": N_("{actor} deleted {subject}"),
        "ngsi.census_repair": N_("{actor} repaired {subject}"),
    },
    actors={
        "job:sensing.air_alerts": N_("the air quality alert job"),
    },
    keys={
        "messages": N_("messages"),
        "stored": N_("stored"),
        "refused": N_("refused"),
        "type": N_("entity type"),
        "id": N_("entity"),
        "ids": N_("entities"),
        "n": N_("number"),
        "attr": N_("attribute"),
        "attrs": N_("attributes"),
        "uri": N_("notification address"),
        "fields": N_("changed fields"),
        "rows": N_("rows changed"),
    },
)
