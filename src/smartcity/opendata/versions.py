"""The old versions of live resources kept downloadable: a Parquet file of the rows each one published.

A version made by a whole publication keeps the file it published (publishing.py). A version made by
applying a live dataset's changed rows (publishing.publish_changes) has no file of its own, so its rows, as
the table holds them right after the change and in the same transaction, are written here as Parquet
(zstd-compressed, a row group per chunk, typed as the table) under var/opendata/<resource>/. The newest
`version_snapshots_kept` of a resource's snapshots are kept; older ones lose their file (removed after the
commit) but keep their record and diff summary. A publisher's uploaded files are never removed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from smartcity.core.context import context_of
from smartcity.opendata import storage
from smartcity.opendata.models import Resource, Version
from smartcity.opendata.settings import OpendataSettings

SNAPSHOT_SUFFIX = ".parquet"
CHUNK = 10_000


def _var(session: Session) -> Path:
    return Path(context_of(session.info["db"]).settings.var_dir)


def _write_parquet(session: Session, resource: Resource, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from smartcity.opendata.rows import _arrow_schema  # one mapping of our column types to Arrow's

    columns = resource.columns
    schema = _arrow_schema(columns)
    table = storage.table_of(resource.table, columns)
    names = [c["id"] for c in columns]
    query = select(*(table.c[n] for n in names)).order_by(table.c["_id"])
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        result = session.execute(query, execution_options={"yield_per": CHUNK})
        for chunk in result.partitions():
            values = list(zip(*chunk, strict=True))
            writer.write_batch(pa.record_batch([list(v) for v in values], schema=schema))


def keep_snapshot(session: Session, resource_uid: str, number: int) -> Version:
    """Write the rows of the resource's version `number` (just made, in this session's transaction) as its
    file; the file is removed again if the transaction rolls back. Prunes the snapshots past retention."""
    resource = session.scalar(select(Resource).where(Resource.uid == resource_uid))
    version = session.scalar(select(Version).where(Version.resource_id == resource.id, Version.number == number))
    var = _var(session)
    relative = Path("opendata") / resource.uid / f"{number}-rows{SNAPSHOT_SUFFIX}"
    path = var / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    event.listen(session, "after_rollback", lambda _s: path.unlink(missing_ok=True), once=True)
    _write_parquet(session, resource, path)
    version.file = str(relative)
    version.file_name = f"{resource.name}-v{number}{SNAPSHOT_SUFFIX}"
    version.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    _prune(session, resource, number)
    session.flush()
    return version


def _prune(session: Session, resource: Resource, newest: int) -> None:
    """Snapshots older than the newest `version_snapshots_kept` lose their file (after the commit)."""
    kept = context_of(session.info["db"]).settings_of(OpendataSettings).version_snapshots_kept
    old = session.scalars(
        select(Version).where(
            Version.resource_id == resource.id,
            Version.number <= newest - kept,
            Version.file.is_not(None),
            Version.file.like(f"%-rows{SNAPSHOT_SUFFIX}"),
        )
    ).all()
    if not old:
        return
    var = _var(session)
    paths = [var / v.file for v in old if v.file]
    for v in old:
        v.file = None

    def remove(_session) -> None:
        for p in paths:
            p.unlink(missing_ok=True)

    event.listen(session, "after_commit", remove, once=True)
