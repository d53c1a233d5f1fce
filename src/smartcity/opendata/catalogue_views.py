"""What the catalogue's pages show, read from the store: the plaza's search with facets, a dataset with its
resources and versions, a resource's rows (a page, sorted by a column), its points and a numeric column's
histogram. Only reads; the public sees published datasets, publishers (opendata.publish) every one.

Identifiers never come from input: a column is one of the resource's own (checked against its list)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from smartcity.core.auth import Identity
from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.i18n import N_
from smartcity.opendata import search, storage
from smartcity.opendata.catalogue import LICENCES
from smartcity.opendata.models import Dataset, DatasetTag, Organisation, Resource, Version

FACET_FIELDS = ("organization", "tags", "res_format", "theme")
PAGE = 10
ROWS_PAGE = 20
ROWS_PAGE_MAX = 100
POINTS_MAX = 2000  # points drawn on a resource's map (the first ones in file order)
CHART_VALUES_MAX = 200_000  # values a histogram counts (the first ones in file order)
CHART_BINS = 12
NUMERIC = ("integer", "float")
# A column holding latitudes or longitudes, by its name as Seoul's files write it (lat, 위도, Y좌표, 위도(lat)…).
_LAT = re.compile(r"^(lat|latitude|위도|y좌표|y)\d*$|\(lat\)|^위도")
_LON = re.compile(r"^(lon|lng|long|longitude|경도|x좌표|x)\d*$|\((lon|lng)\)|^경도")


def can_publish(identity: Identity | None) -> bool:
    return identity is not None and identity.can("opendata.publish")


def _in(lang: str, ko: str, en: str) -> str:
    """A text kept in Korean and English, in the page's language (the Korean one where there is no English)."""
    return en if lang == "en" and en else ko


# --- the plaza: search with facets ----------------------------------------------------------------------


@dataclass(frozen=True)
class FacetValue:
    value: str
    label: str
    count: int
    chosen: bool


@dataclass(frozen=True)
class Summary:
    name: str
    title: str
    description: str
    organisation: str
    formats: list[str]
    tags: list[str]
    modified_at: datetime


@dataclass
class Plaza:
    q: str
    filters: dict[str, list[str]]
    total: int
    start: int
    page: int
    datasets: list[Summary]
    facets: dict[str, list[FacetValue]] = field(default_factory=dict)


def _org_titles(session: Session, lang: str) -> dict[str, str]:
    return {o.name: _in(lang, o.title_ko, o.title_en) for o in session.scalars(select(Organisation))}


def browse(session: Session, q: str, filters: dict[str, list[str]], start: int, lang: str, page: int = PAGE) -> Plaza:
    """A page of published datasets matching `q` and the facet `filters`, with the facets' counts."""
    chosen = {k: v for k, v in filters.items() if k in FACET_FIELDS and v}
    found = search.search(
        session, q, ["dataset"], filters=chosen, facet_fields=list(FACET_FIELDS), limit=page, offset=start
    )
    ids = found.ids("dataset")
    by_id = {d.id: d for d in session.scalars(select(Dataset).where(Dataset.id.in_(ids), Dataset.published))}
    orgs = _org_titles(session, lang)
    org_of = {o.id: o.name for o in session.scalars(select(Organisation))}
    tags: dict[int, list[str]] = {}
    for dataset_id, tag in session.execute(
        select(DatasetTag.dataset_id, DatasetTag.tag).where(DatasetTag.dataset_id.in_(ids)).order_by(DatasetTag.tag)
    ):
        tags.setdefault(dataset_id, []).append(tag)
    formats: dict[int, set[str]] = {}
    for dataset_id, fmt in session.execute(
        select(Resource.dataset_id, Resource.format).where(Resource.dataset_id.in_(ids))
    ):
        formats.setdefault(dataset_id, set()).add(fmt)
    datasets = [
        Summary(
            d.name,
            _in(lang, d.title_ko, d.title_en),
            _in(lang, d.description_ko, d.description_en),
            orgs.get(org_of.get(d.organisation_id, ""), ""),
            sorted(formats.get(d.id, ())),
            tags.get(d.id, []),
            d.modified_at,
        )
        for i in ids
        if (d := by_id.get(i)) is not None
    ]
    facets = {
        name: [
            FacetValue(
                value, orgs.get(value, value) if name == "organization" else value, count, value in chosen.get(name, [])
            )
            for value, count in values
        ]
        for name, values in found.facets.items()
    }
    return Plaza(q, chosen, found.total, start, page, datasets, facets)


# --- a dataset ------------------------------------------------------------------------------------------


@dataclass
class ResourceView:
    resource: Resource
    versions: list[Version]


@dataclass
class DatasetView:
    dataset: Dataset
    title: str
    description: str
    organisation: str
    organisation_name: str
    licence: str
    tags: list[str]
    resources: list[ResourceView]


def visible_dataset(session: Session, name: str, identity: Identity | None) -> Dataset:
    """The dataset `name` if the caller may see it: published, or any to a publisher."""
    found = session.scalar(select(Dataset).where(Dataset.name == name))
    if found is None or not (found.published or can_publish(identity)):
        raise NotFound(N_("no dataset {name}"), params={"name": name})
    return found


def dataset_view(session: Session, name: str, lang: str, identity: Identity | None) -> DatasetView:
    dataset = visible_dataset(session, name, identity)
    org = session.get(Organisation, dataset.organisation_id) if dataset.organisation_id else None
    tags = list(
        session.scalars(select(DatasetTag.tag).where(DatasetTag.dataset_id == dataset.id).order_by(DatasetTag.tag))
    )
    resources = list(session.scalars(select(Resource).where(Resource.dataset_id == dataset.id).order_by(Resource.id)))
    versions: dict[int, list[Version]] = {}
    if resources:
        for v in session.scalars(
            select(Version).where(Version.resource_id.in_([r.id for r in resources])).order_by(Version.number.desc())
        ):
            versions.setdefault(v.resource_id, []).append(v)
    return DatasetView(
        dataset,
        _in(lang, dataset.title_ko, dataset.title_en),
        _in(lang, dataset.description_ko, dataset.description_en),
        _in(lang, org.title_ko, org.title_en) if org else "",
        org.name if org else "",
        LICENCES.get(dataset.licence, dataset.licence),
        tags,
        [ResourceView(r, versions.get(r.id, [])) for r in resources],
    )


# --- a resource and its rows ----------------------------------------------------------------------------


@dataclass
class ResourceRef:
    resource: Resource
    dataset: Dataset
    title: str  # the dataset's title in the page's language


def visible_resource(session: Session, uid: str, identity: Identity | None, lang: str = "ko") -> ResourceRef:
    found = session.execute(
        select(Resource, Dataset).join(Dataset, Dataset.id == Resource.dataset_id).where(Resource.uid == uid)
    ).first()
    if found is None or not (found[1].published or can_publish(identity)):
        raise NotFound(N_('Resource "{id}" was not found.'), params={"id": uid})
    resource, dataset = found
    return ResourceRef(resource, dataset, _in(lang, dataset.title_ko, dataset.title_en))


def version_of(session: Session, resource: Resource, number: int) -> Version:
    found = session.scalar(select(Version).where(Version.resource_id == resource.id, Version.number == number))
    if found is None:
        raise NotFound(N_("version {number} has no stored file"), params={"number": number})
    return found


def latest_version(session: Session, resource: Resource) -> Version | None:
    return session.scalar(
        select(Version).where(Version.resource_id == resource.id).order_by(Version.number.desc()).limit(1)
    )


@dataclass
class Rows:
    columns: list[dict]
    rows: list[list[Any]]
    total: int
    start: int
    limit: int
    sort: str | None
    desc: bool


def _table(resource: Resource) -> Table | None:
    return storage.table_of(resource.table, resource.columns) if resource.table else None


def _column_id(resource: Resource, name: str | None) -> str | None:
    if not name:
        return None
    if name not in {c["id"] for c in resource.columns}:
        raise InvalidInput(N_("no column named {names} in the file"), code="column", params={"names": name})
    return name


def rows_page(session: Session, resource: Resource, *, sort: str | None, desc: bool, start: int, limit: int) -> Rows:
    """A page of the resource's rows in file order, or sorted by one of its columns (ties in file order)."""
    limit = max(1, min(limit, ROWS_PAGE_MAX))
    sort = _column_id(resource, sort)
    table = _table(resource)
    if table is None:
        return Rows(resource.columns, [], 0, 0, limit, sort, desc)
    names = [c["id"] for c in resource.columns]
    order = []
    if sort:
        column = table.c[sort]
        # Empty cells last either way, as a reader scanning a sorted column expects.
        order += [column.is_(None), column.desc() if desc else column.asc()]
    order.append(table.c._id.asc())
    query = select(*(table.c[n] for n in names)).order_by(*order).offset(max(0, start)).limit(limit)
    rows = [list(r) for r in session.execute(query)]
    total = session.scalar(select(func.count()).select_from(table)) or 0
    return Rows(resource.columns, rows, int(total), max(0, start), limit, sort, desc)


def point_columns(resource: Resource) -> tuple[str, str] | None:
    """The resource's latitude and longitude columns (numeric, named as such), if it has both."""
    lat = lon = None
    for c in resource.columns:
        if c["type"] not in NUMERIC:
            continue
        name = str(c.get("label") or c["id"]).strip().lower().replace(" ", "")
        if lat is None and _LAT.search(name):
            lat = c["id"]
        elif lon is None and _LON.search(name):
            lon = c["id"]
    return (lat, lon) if lat and lon else None


def numeric_columns(resource: Resource) -> list[dict]:
    return [c for c in resource.columns if c["type"] in NUMERIC]


def points(session: Session, resource: Resource, limit: int = POINTS_MAX) -> dict[str, Any]:
    """The resource's first rows with a position, as GeoJSON points (properties: the row's cells)."""
    pair = point_columns(resource)
    table = _table(resource)
    features: list[dict[str, Any]] = []
    if pair is None or table is None:
        return {"type": "FeatureCollection", "features": features}
    lat, lon = (table.c[n] for n in pair)
    names = [c["id"] for c in resource.columns]
    query = (
        select(table.c._id, *(table.c[n] for n in names))
        .where(lat.is_not(None), lon.is_not(None), lat.between(-90, 90), lon.between(-180, 180))
        .order_by(table.c._id)
        .limit(limit)
    )
    for row in session.execute(query):
        cells = dict(zip(names, row[1:], strict=True))
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [float(cells[pair[1]]), float(cells[pair[0]])]},
                "properties": {"_id": row[0], **{k: _plain(v) for k, v in cells.items()}},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _plain(v: Any) -> Any:
    return v.isoformat() if hasattr(v, "isoformat") else v


def histogram(session: Session, resource: Resource, column: str | None, bins: int = CHART_BINS) -> dict[str, Any]:
    """A numeric column's values counted in equal bins: {column, label, bins: [{from, to, count}], counted}."""
    numeric = numeric_columns(resource)
    if not numeric:
        raise InvalidInput(N_("the resource has no numeric column"), code="column")
    name = _column_id(resource, column) or numeric[0]["id"]
    meta = next(c for c in resource.columns if c["id"] == name)
    if meta["type"] not in NUMERIC:
        raise InvalidInput(N_("{column} is not a numeric column"), code="column", params={"column": name})
    table = _table(resource)
    values: list[float] = []
    if table is not None:
        query = select(table.c[name]).where(table.c[name].is_not(None)).order_by(table.c._id).limit(CHART_VALUES_MAX)
        values = [float(v) for v in session.scalars(query) if v is not None and math.isfinite(float(v))]
    found: dict[str, Any] = {"column": name, "label": meta.get("label") or name, "counted": len(values), "bins": []}
    if not values:
        return found
    low, high = min(values), max(values)
    if meta["type"] == "integer" and high - low + 1 <= bins:
        edges = [low + i for i in range(int(high - low) + 2)]  # one bin per whole value
    elif high == low:
        edges = [low, high]
    else:
        edges = [low + (high - low) * i / bins for i in range(bins + 1)]
    counts = [0] * (len(edges) - 1)
    width = edges[1] - edges[0]
    for v in values:
        i = min(int((v - low) / width), len(counts) - 1) if width else 0
        counts[i] += 1
    found["bins"] = [{"from": edges[i], "to": edges[i + 1], "count": n} for i, n in enumerate(counts)]
    return found


# --- the publisher's list ------------------------------------------------------------------------------


def every_dataset(session: Session, lang: str) -> list[tuple[Dataset, str, int]]:
    """Every dataset (published or not), newest change first, with its title and number of resources."""
    counts = dict(session.execute(select(Resource.dataset_id, func.count()).group_by(Resource.dataset_id)).all())
    return [
        (d, _in(lang, d.title_ko, d.title_en), int(counts.get(d.id, 0)))
        for d in session.scalars(select(Dataset).order_by(Dataset.modified_at.desc(), Dataset.id.desc()))
    ]


def organisations(session: Session, lang: str) -> list[tuple[str, str]]:
    return [
        (o.name, _in(lang, o.title_ko, o.title_en))
        for o in session.scalars(select(Organisation).order_by(Organisation.name))
    ]
