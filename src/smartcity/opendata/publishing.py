"""Publishing: a dataset described, a resource's rows loaded into its typed table, each publication kept as a
version (what changed, the file as published) — all in the caller's transaction, audited."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.context import context_of
from smartcity.core.db import utcnow
from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.i18n import N_
from smartcity.opendata import loading, storage
from smartcity.opendata.catalogue import index_dataset, new_uid, slug
from smartcity.opendata.models import Dataset, DatasetTag, Organisation, Resource, Version


@dataclass
class DatasetInfo:
    """A dataset's description, as a publisher gives it."""

    name: str
    title_ko: str = ""
    title_en: str = ""
    description_ko: str = ""
    description_en: str = ""
    organisation: str | None = None  # an organisation's name
    licence: str = "KOGL-Type1"
    publisher: str = ""
    update_frequency: str = "irregular"
    spatial: str = ""
    temporal_start: str | None = None
    temporal_end: str | None = None
    theme: str = ""
    tags: Sequence[str] = field(default_factory=tuple)


def get_dataset(session: Session, name: str) -> Dataset:
    found = session.scalar(select(Dataset).where(Dataset.name == name))
    if found is None:
        raise NotFound(N_("no dataset {name}"), params={"name": name})
    return found


def save_dataset(session: Session, who, info: DatasetInfo, feed: str | None = None) -> Dataset:
    """Create the dataset `info.name`, or update its description; its tags become `info.tags`."""
    name = slug(info.name)
    if not name or name != info.name.lower():
        raise InvalidInput(
            N_("a dataset's name is lower-case letters, digits, '-' and '_': {name}"), params={"name": info.name}
        )
    org_id = None
    if info.organisation:
        org_id = session.scalar(select(Organisation.id).where(Organisation.name == info.organisation))
        if org_id is None:
            raise NotFound(N_("no organisation {name}"), params={"name": info.organisation})
    found = session.scalar(select(Dataset).where(Dataset.name == name))
    created = found is None
    if found is None:
        found = Dataset(uid=new_uid(), name=name, feed=feed, published=True, created_at=utcnow())
        session.add(found)
    for attr in (
        "title_ko",
        "title_en",
        "description_ko",
        "description_en",
        "licence",
        "publisher",
        "update_frequency",
        "spatial",
        "temporal_start",
        "temporal_end",
        "theme",
    ):
        setattr(found, attr, getattr(info, attr))
    found.title_ko = info.title_ko or info.title_en or name
    found.organisation_id = org_id
    found.modified_at = utcnow()
    session.flush()
    session.execute(delete(DatasetTag).where(DatasetTag.dataset_id == found.id))
    for tag in sorted({t.strip() for t in info.tags if t.strip()}):
        session.add(DatasetTag(dataset_id=found.id, tag=tag[:100]))
    audit.record(session, who, "create" if created else "update", "opendata.dataset", found.name)
    session.flush()
    index_dataset(session, found)
    return found


def _resource(session: Session, dataset: Dataset, name: str, source: str, fmt: str) -> Resource:
    found = session.scalar(select(Resource).where(Resource.dataset_id == dataset.id, Resource.name == name))
    if found is None:
        found = Resource(uid=new_uid(), dataset_id=dataset.id, name=name, source=source, format=fmt, columns=[])
        session.add(found)
        session.flush()
    return found


def _store_file(session: Session, resource: Resource, number: int, filename: str, data: bytes) -> str:
    """The file as published, kept under var/opendata/; removed again if the transaction rolls back."""
    var = Path(context_of(session.info["db"]).settings.var_dir)
    relative = Path("opendata") / resource.uid / f"{number}-{Path(filename).name}"
    path = var / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    event.listen(session, "after_rollback", lambda _s: path.unlink(missing_ok=True), once=True)
    return str(relative)


def version_file(session: Session, version: Version) -> Path:
    if not version.file:
        raise NotFound(N_("version {number} has no stored file"), params={"number": version.number})
    return Path(context_of(session.info["db"]).settings.var_dir) / version.file


@dataclass(frozen=True)
class Published:
    """What a publication did."""

    dataset: str
    resource: str
    resource_id: str
    version: int
    rows: int
    added: int
    removed: int
    changed: int
    problems: list[dict]
    problem_count: int
    encoding: str
    columns: list[dict]


def publish_loaded(
    session: Session,
    who,
    dataset: Dataset,
    resource_name: str,
    loaded: loading.Loaded,
    data: bytes,
    filename: str,
    *,
    source: str = "upload",
    fmt: str = "CSV",
    key: str | None = None,
    progress: Callable[[int], Any] | None = None,
) -> Published:
    """Replace a resource's rows by `loaded` and keep the publication as a new version (in the caller's
    transaction: a failure leaves the previous version as it was)."""
    resource = _resource(session, dataset, resource_name, source, fmt)
    columns = [c.to_dict() for c in loaded.columns]
    if key is not None and key not in {c["id"] for c in columns}:
        raise InvalidInput(N_("no column named {names} in the file"), code="column", params={"names": key})
    with loading.no_gc():
        count, changes = storage.replace_rows(session, resource.id, columns, loaded.rows, key or resource.key, progress)
    number = resource.version + 1
    stored = _store_file(session, resource, number, filename, data)
    resource.table = storage.table_name(resource.id)
    resource.columns = columns
    resource.key = key or resource.key
    resource.format = fmt
    published = _keep_version(
        session,
        who,
        dataset,
        resource,
        count,
        changes,
        columns,
        {"problems": loaded.problem_count},
        file=stored,
        file_name=Path(filename).name,
        sha256=hashlib.sha256(data).hexdigest(),
        encoding=loaded.encoding,
        problems=[p.to_dict() for p in loaded.problems],
        problem_count=loaded.problem_count,
    )
    index_dataset(session, dataset)
    return published


def _keep_version(
    session: Session,
    who,
    dataset: Dataset,
    resource: Resource,
    count: int,
    changes: storage.Diff,
    columns: list[dict],
    audited: Mapping[str, Any],
    **kept: Any,
) -> Published:
    """A publication kept as the resource's next version (`kept`: the file and what its load found), the
    resource's current version and row count moved to it, audited (`audited`: more of the entry's details)."""
    number = resource.version + 1
    version = Version(
        resource_id=resource.id,
        number=number,
        rows=count,
        added=changes.added,
        removed=changes.removed,
        changed=changes.changed,
        columns=columns,
        published_by=getattr(who, "label", None) or str(who),
        created_at=utcnow(),
        **kept,
    )
    session.add(version)
    resource.row_count = count
    resource.version = number
    resource.modified_at = dataset.modified_at = utcnow()
    audit.record(
        session,
        who,
        "publish",
        "opendata.resource",
        resource.uid,
        {"dataset": dataset.name, "version": number, "rows": count, **audited},
    )
    session.flush()
    return Published(
        dataset.name,
        resource.name,
        resource.uid,
        number,
        count,
        changes.added,
        changes.removed,
        changes.changed,
        version.problems,
        version.problem_count,
        version.encoding,
        columns,
    )


def publish_file(
    session: Session,
    who,
    dataset_name: str,
    data: bytes,
    filename: str,
    *,
    resource_name: str | None = None,
    key: str | None = None,
    types: dict[str, str] | None = None,
    progress: Callable[[int], Any] | None = None,
) -> Published:
    """Load a CSV, XLSX, JSON, GeoJSON or Parquet file as a resource of an existing dataset (a new version
    if it exists)."""
    dataset = get_dataset(session, dataset_name)
    fmt = loading.format_of(filename)
    loaded = loading.load_bytes(data, filename, types)
    name = resource_name or Path(filename).stem
    return publish_loaded(session, who, dataset, name, loaded, data, filename, fmt=fmt, key=key, progress=progress)


def rows_as_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode()


def _type_of_values(values: Iterable[Any]) -> str:
    """A module's column typed by its Python values (a str stays text: a district code is not a number)."""
    kinds = {type(v) for v in values if v is not None}
    for kind, name in ((bool, "boolean"), (int, "integer"), (datetime, "datetime"), (date, "date")):
        if kinds == {kind}:
            return name
    if kinds and kinds <= {int, float}:
        return "float"
    return "text"


def publish_records(
    session: Session, who, dataset: Dataset, resource_name: str, records: Iterable[Mapping[str, Any]], key: str | None
) -> Published:
    """Publish rows a module feeds (dicts of typed values): typed as a file would be, kept as CSV."""
    header: list[str] = []
    seen: set[str] = set()
    listed = list(records)
    for record in listed:
        for k in record:
            if k not in seen:
                seen.add(k)
                header.append(k)
    rows = [[record.get(k) for k in header] for record in listed]
    raw = loading.RawTable(header, [(n, row) for n, row in enumerate(rows, 2)], "utf-8")
    ids = loading.column_ids(header)
    loaded = loading.make_typed(raw, {ids[i]: _type_of_values(row[i] for row in rows) for i in range(len(header))})
    data = rows_as_csv(header, rows)
    return publish_loaded(
        session, who, dataset, resource_name, loaded, data, f"{resource_name}.csv", source="platform", key=key
    )


class NeedsFullPublication(Exception):
    """The changed rows cannot be applied alone (no table yet, other columns, a value of another type)."""


def publish_changes(
    session: Session,
    who,
    dataset: Dataset,
    resource_name: str,
    records: Iterable[Mapping[str, Any]],
    key: str,
    keys: Sequence[Any],
) -> Published | None:
    """The rows of `keys` (as a module feeds them now: `records`; a key without one is a row gone) applied to
    the resource by `key`, as one new version; None when none of them changed. A version made this way keeps
    no file (the table is the publication). Raises NeedsFullPublication when the rows do not fit the table."""
    resource = session.scalar(select(Resource).where(Resource.dataset_id == dataset.id, Resource.name == resource_name))
    if resource is None or resource.table is None or resource.key != key or not resource.columns:
        raise NeedsFullPublication
    columns = list(resource.columns)
    ids = [c["id"] for c in columns]
    listed = list(records)
    if any(list(record) != ids for record in listed):
        raise NeedsFullPublication
    raw = loading.RawTable(ids, [(n, [record[k] for k in ids]) for n, record in enumerate(listed, 2)], "utf-8")
    loaded = loading.make_typed(raw, {c["id"]: c["type"] for c in columns})
    if loaded.problem_count:
        raise NeedsFullPublication
    kind = next(c["type"] for c in columns if c["id"] == key)
    typed_keys = []
    for k in keys:
        try:
            typed_keys.append(loading.PARSERS[kind](k))
        except (ValueError, TypeError, OverflowError):
            raise NeedsFullPublication from None
    changes = storage.upsert_rows(session, resource.id, columns, key, typed_keys, loaded.rows)
    if not (changes.added or changes.removed or changes.changed):
        return None
    count = (resource.row_count or 0) + changes.added - changes.removed
    return _keep_version(
        session,
        who,
        dataset,
        resource,
        count,
        changes,
        columns,
        {"keys": len(keys)},
        file=None,
        encoding="utf-8",
        problems=[],
        problem_count=0,
    )


def set_published(session: Session, who, name: str, published: bool) -> Dataset:
    """Publish or withdraw a dataset (and its rows, its search entry, its APIs' answers), audited."""
    dataset = get_dataset(session, name)
    if dataset.published != published:
        dataset.published = published
        dataset.modified_at = utcnow()
        audit.record(session, who, "publish" if published else "unpublish", "opendata.dataset", dataset.name)
        session.flush()
        index_dataset(session, dataset)
    return dataset


def versions(session: Session, resource_uid: str) -> list[Version]:
    """Every publication of a resource, newest first."""
    resource = session.scalar(select(Resource).where(Resource.uid == resource_uid))
    if resource is None:
        raise NotFound(N_("Resource was not found."))
    return list(
        session.scalars(select(Version).where(Version.resource_id == resource.id).order_by(Version.number.desc()))
    )
