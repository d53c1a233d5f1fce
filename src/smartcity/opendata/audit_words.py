"""How the audit page tells the open data module's entries (core.audit.AuditWords, Module.audit)."""

from __future__ import annotations

from smartcity.core.audit import AuditWords
from smartcity.core.i18n import N_

WORDS = AuditWords(
    subjects={
        "opendata.dataset": N_("dataset"),
        "opendata.openapi_service": N_("Open API service"),
        "opendata.resource": N_("data resource"),
        "document": N_("document"),
    },
    actions={
        "publish": N_("{actor} published {subject}"),
        "unpublish": N_("{actor} withdrew {subject} from publication"),
        "refuse": N_("{actor} refused to publish {subject}"),
        "upload": N_("{actor} uploaded {subject}"),
        "declare": N_("{actor} declared {subject}"),
        "read_original": N_("{actor} read the unmasked original of {subject}"),
        "mask_added": N_("{actor} added a mask to {subject}"),
        "mask_accepted": N_("{actor} accepted a mask of {subject}"),
    },
    actors={"opendata": N_("the open data service"), "job:opendata": N_("the open data service")},
    keys={
        "masks": N_("masks"),
        "dataset": N_("dataset"),
        "resource": N_("data resource"),
        "version": N_("version"),
        "rows": N_("rows"),
        "problems": N_("problems"),
        "characters": N_("characters"),
        "file_type": N_("file type"),
        "filters": N_("filters"),
        "keys": N_("key columns"),
        "kinds": N_("kinds"),
        "mask": N_("mask"),
        "masked": N_("masked"),
        "proposed": N_("proposed"),
        "spans": N_("spans"),
        "start": N_("start"),
        "end": N_("end"),
        "undone": N_("undone"),
    },
)
