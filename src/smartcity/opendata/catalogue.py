"""The catalogue: organisations, datasets, tags and resources as read models and their changes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from smartcity.core.errors import InvalidInput
from smartcity.core.i18n import N_
from smartcity.core.models import Department
from smartcity.opendata.models import Dataset, DatasetTag, Organisation, Resource

SLUG = re.compile(r"[^a-z0-9_-]+")


def slug(text: str) -> str:
    """A CKAN name from `text`: lower-case ASCII letters, digits, '-' and '_'."""
    return SLUG.sub("-", text.lower()).strip("-")[:100]


def new_uid() -> str:
    return str(uuid.uuid4())


def seed_organisations(session: Session) -> int:
    """An organisation for every department of the city that has none yet (idempotent); how many were added."""
    have = set(session.scalars(select(Organisation.department_code)))
    added = 0
    for dept in session.scalars(select(Department).where(Department.kind == "department").order_by(Department.code)):
        if dept.code in have:
            continue
        session.add(
            Organisation(
                uid=new_uid(),
                name=slug(dept.code),
                title_ko=dept.name_ko,
                title_en=dept.name_en,
                description_ko="",
                description_en="",
                department_code=dept.code,
            )
        )
        added += 1
    session.flush()
    return added


# --- read models: the catalogue as CKAN's clients know it --------------------------------------------

LICENCES = {
    "KOGL-Type1": "공공누리 제1유형 (출처표시)",
    "KOGL-Type2": "공공누리 제2유형 (출처표시+상업적 이용금지)",
    "KOGL-Type3": "공공누리 제3유형 (출처표시+변경금지)",
    "KOGL-Type4": "공공누리 제4유형 (출처표시+상업적 이용금지+변경금지)",
    "CC-BY-4.0": "Creative Commons Attribution 4.0",
}
FACETS = ("organization", "tags", "res_format", "theme", "license_id")
SORTS = {
    "name": "name",
    "title": "title_ko",
    "title_string": "title_ko",
    "metadata_modified": "modified_at",
    "metadata_created": "created_at",
}


def _iso(value) -> str | None:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() if value is not None else None


def organisation_dict(org: Any, package_count: int | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": org.uid,
        "name": org.name,
        "title": org.title_ko,
        "display_name": org.title_ko,
        "title_translated": {"ko": org.title_ko, "en": org.title_en},
        "description": org.description_ko,
        "type": "organization",
        "is_organization": True,
        "state": "active",
        "approval_status": "approved",
        "created": _iso(org.created_at),
        "image_url": "",
    }
    if package_count is not None:
        found["package_count"] = package_count
    return found


def resource_dict(resource: Any, dataset: Any, base_url: str, position: int = 0) -> dict[str, Any]:
    return {
        "id": resource.uid,
        "package_id": dataset.uid,
        "name": resource.name,
        "description": resource.description,
        "format": resource.format,
        "url": f"{base_url}/opendata/resources/{resource.uid}/download",
        "url_type": "upload" if resource.source == "upload" else "datastore",
        "datastore_active": resource.table is not None,
        "created": _iso(resource.created_at),
        "last_modified": _iso(resource.modified_at),
        "metadata_modified": _iso(resource.modified_at),
        "position": position,
        "state": "active",
        "mimetype": "text/csv" if resource.format == "CSV" else None,
        "version": resource.version,
        "rows": resource.row_count,
        "source": resource.source,
    }


def package_dict(session: Session, dataset: Dataset, base_url: str) -> dict[str, Any]:
    """A dataset as CKAN's package_show answers it (with our fields beside CKAN's)."""
    return package_dicts(session, [dataset], base_url)[0]


# What a package shows, read as plain rows: loading them as ORM objects (identity map, every column, a
# resource's JSON `columns`) was a third of a package_search's CPU at 5,000 datasets.
DATASET_COLUMNS = (
    Dataset.id,
    Dataset.uid,
    Dataset.name,
    Dataset.title_ko,
    Dataset.title_en,
    Dataset.description_ko,
    Dataset.description_en,
    Dataset.organisation_id,
    Dataset.licence,
    Dataset.publisher,
    Dataset.update_frequency,
    Dataset.spatial,
    Dataset.temporal_start,
    Dataset.temporal_end,
    Dataset.theme,
    Dataset.feed,
    Dataset.published,
    Dataset.created_at,
    Dataset.modified_at,
)
_ORGANISATION_COLUMNS = (
    Organisation.id,
    Organisation.uid,
    Organisation.name,
    Organisation.title_ko,
    Organisation.title_en,
    Organisation.description_ko,
    Organisation.created_at,
)
_RESOURCE_COLUMNS = (
    Resource.dataset_id,
    Resource.uid,
    Resource.name,
    Resource.description,
    Resource.format,
    Resource.source,
    Resource.table,
    Resource.row_count,
    Resource.version,
    Resource.created_at,
    Resource.modified_at,
)


# Built once: building a select of thirty columns cost more per search than running it.
_DATASETS = select(*DATASET_COLUMNS).where(Dataset.id.in_(bindparam("ids", expanding=True)))
_ORGANISATIONS = select(*_ORGANISATION_COLUMNS).where(Organisation.id.in_(bindparam("ids", expanding=True)))
_TAGS = (
    select(DatasetTag.dataset_id, DatasetTag.tag)
    .where(DatasetTag.dataset_id.in_(bindparam("ids", expanding=True)))
    .order_by(DatasetTag.tag)
)
_RESOURCES = (
    select(*_RESOURCE_COLUMNS).where(Resource.dataset_id.in_(bindparam("ids", expanding=True))).order_by(Resource.id)
)


def package_dicts(session: Session, datasets: Sequence[Any], base_url: str) -> list[dict[str, Any]]:
    """Datasets (objects or rows of DATASET_COLUMNS) as package_show answers each, in their order: their
    organisations, tags and resources read in three statements for all of them (a search's page of ten took
    thirty)."""
    if not datasets:
        return []
    ids = [d.id for d in datasets]
    org_ids = sorted({d.organisation_id for d in datasets if d.organisation_id})
    orgs = {o.id: o for o in session.execute(_ORGANISATIONS, {"ids": org_ids})} if org_ids else {}
    tags: dict[int, list[str]] = {i: [] for i in ids}
    resources: dict[int, list[Any]] = {i: [] for i in ids}
    for dataset_id, tag in session.execute(_TAGS, {"ids": ids}):
        tags[dataset_id].append(tag)
    for resource in session.execute(_RESOURCES, {"ids": ids}):
        resources[resource.dataset_id].append(resource)
    return [
        _package(dataset, orgs.get(dataset.organisation_id), tags[dataset.id], resources[dataset.id], base_url)
        for dataset in datasets
    ]


def _package(dataset: Any, org: Any, tags: list[str], resources: list[Any], base_url: str) -> dict[str, Any]:
    return {
        "id": dataset.uid,
        "name": dataset.name,
        "title": dataset.title_ko,
        "title_translated": {"ko": dataset.title_ko, "en": dataset.title_en},
        "notes": dataset.description_ko,
        "notes_translated": {"ko": dataset.description_ko, "en": dataset.description_en},
        "license_id": dataset.licence,
        "license_title": LICENCES.get(dataset.licence, dataset.licence),
        "author": dataset.publisher,
        "maintainer": dataset.publisher,
        "owner_org": org.uid if org else None,
        "organization": organisation_dict(org) if org else None,
        "tags": [{"name": t, "display_name": t, "state": "active"} for t in tags],
        "num_tags": len(tags),
        "resources": [resource_dict(r, dataset, base_url, i) for i, r in enumerate(resources)],
        "num_resources": len(resources),
        "frequency": dataset.update_frequency,
        "spatial": dataset.spatial,
        "temporal_start": dataset.temporal_start,
        "temporal_end": dataset.temporal_end,
        "theme": dataset.theme,
        "source": "platform" if dataset.feed else "upload",
        "metadata_created": _iso(dataset.created_at),
        "metadata_modified": _iso(dataset.modified_at),
        "state": "active",
        "private": not dataset.published,
        "type": "dataset",
        "url": f"{base_url}/opendata/datasets/{dataset.name}",
        "extras": [
            {"key": "update_frequency", "value": dataset.update_frequency},
            {"key": "theme", "value": dataset.theme},
        ],
    }


def index_dataset(session: Session, dataset: Dataset) -> None:
    """Keep the dataset's search entry (opendata.search) as it now is: published ones only."""
    from smartcity.opendata import search

    if not dataset.published:
        search.remove(session, "dataset", dataset.id)
        return
    org = session.get(Organisation, dataset.organisation_id) if dataset.organisation_id else None
    tags = list(session.scalars(select(DatasetTag.tag).where(DatasetTag.dataset_id == dataset.id)))
    formats = sorted(set(session.scalars(select(Resource.format).where(Resource.dataset_id == dataset.id))))
    search.index_text(
        session,
        "dataset",
        dataset.id,
        title=[dataset.title_ko, dataset.title_en, dataset.name],
        body=[dataset.description_ko, dataset.description_en, *tags, *(([org.title_ko, org.title_en]) if org else [])],
        facets={
            "organization": [org.name] if org else [],
            "tags": tags,
            "res_format": formats,
            "theme": [dataset.theme] if dataset.theme else [],
            "license_id": [dataset.licence],
        },
    )


# --- package_search -----------------------------------------------------------------------------------

ROWS_DEFAULT = 10
ROWS_MAX = 1000  # CKAN's ckan.search.rows_max: more is clamped, the count stays true
_FQ = re.compile(r'\s*\+?([a-z_]+):(?:"((?:[^"\\]|\\.)*)"|\(([^()]*)\)|([^\s"()]+))')


class SearchQueryError(InvalidInput):
    """A search the catalogue cannot run (CKAN's "Search Query Error", 400)."""

    status = 400
    code = "search_query"


def parse_fq(fq: str) -> dict[str, list[str]]:
    """CKAN's `fq` as filters: `field:value`, `field:"a value"`, `field:(a OR b)`, clauses ANDed. Only the
    facet fields may be filtered on; values are bound, never written into SQL."""
    found: dict[str, list[str]] = {}
    at = 0
    text = fq or ""
    while at < len(text.rstrip()):
        m = _FQ.match(text, at)
        if not m:
            raise SearchQueryError(N_("cannot parse fq near {part}"), params={"part": text[at : at + 40].strip()})
        field, quoted, group, bare = m.groups()
        if field not in FACETS:
            raise SearchQueryError(N_("fq cannot filter on {field}"), params={"field": field})
        if field in found:
            raise SearchQueryError(N_("fq names {field} more than once"), params={"field": field})
        if group is not None:
            values = [v.strip().strip('"') for v in re.split(r"\s+OR\s+", group.strip()) if v.strip()]
        else:
            values = [quoted.replace('\\"', '"') if quoted is not None else bare]
        found[field] = values
        at = m.end()
    return found


def _sort(sort: str | None) -> list[tuple[str, bool]] | None:
    """CKAN's `sort` ("metadata_modified desc, name asc") as (column, descending); None: by relevance."""
    if not sort or not sort.strip():
        return None
    order: list[tuple[str, bool]] = []
    for part in sort.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise SearchQueryError(N_("cannot sort by {sort}"), params={"sort": sort})
        name, desc = words[0], len(words) == 2 and words[1].lower() == "desc"
        if name == "score":
            if not order:
                return None
            continue
        if name not in SORTS:
            raise SearchQueryError(N_("cannot sort by {sort}"), params={"sort": name})
        order.append((SORTS[name], desc))
    return order


def search_packages(
    session: Session,
    base_url: str,
    *,
    q: str = "",
    fq: str = "",
    sort: str | None = None,
    rows: int = ROWS_DEFAULT,
    start: int = 0,
    facet_fields: list[str] | None = None,
    facet_limit: int = 50,
    facet_mincount: int = 1,
) -> dict[str, Any]:
    """CKAN's package_search over the published datasets: the true count, a page of at most ROWS_MAX."""
    from smartcity.opendata import search

    if rows < 0 or start < 0:
        raise InvalidInput(N_("rows and start cannot be negative"), code="rows")
    rows = min(rows, ROWS_MAX)
    unknown = [f for f in facet_fields or [] if f not in FACETS]
    if unknown:
        raise SearchQueryError(N_("cannot facet on {field}"), params={"field": ", ".join(unknown)})
    filters = parse_fq(fq)
    order = _sort(sort)
    limit = -1 if facet_limit is None or facet_limit < 0 else facet_limit
    found = search.search(
        session,
        q or "",
        ["dataset"],
        filters=filters,
        facet_fields=list(facet_fields or []),
        facet_limit=limit if limit >= 0 else 1_000_000,
        facet_mincount=facet_mincount,
        limit=rows if order is None else 0,
        offset=start if order is None else 0,
    )
    if order is None:
        ids = found.ids("dataset")
    else:
        every = [hit.ref_id for hit in search.matches(session, q or "", ["dataset"], filters=filters)]
        columns = [getattr(Dataset, c).desc() if d else getattr(Dataset, c).asc() for c, d in order]
        ids = list(
            session.scalars(
                select(Dataset.id).where(Dataset.id.in_(every)).order_by(*columns, Dataset.id).offset(start).limit(rows)
            )
        )
    # Published is checked here, not in SQL: `published = 1` led SQLite to walk the index of every published
    # dataset instead of fetching the page's few by their ids (4 ms of a search at 5,000 datasets).
    by_id = {d.id: d for d in session.execute(_DATASETS, {"ids": ids}) if d.published} if ids else {}
    results = package_dicts(session, [by_id[i] for i in ids if i in by_id], base_url)
    facets = {name: dict(values) for name, values in found.facets.items()}
    return {
        "count": found.total,
        "results": results,
        "facets": facets,
        "search_facets": {
            name: {
                "title": name,
                "items": [{"name": v, "display_name": v, "count": n} for v, n in values],
            }
            for name, values in found.facets.items()
        },
        "sort": sort or "score desc, metadata_modified desc",
    }
