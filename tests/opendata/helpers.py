"""Helpers the open data tests share: publishing a file the test wrote, reading a resource's stored rows."""

from __future__ import annotations

from sqlalchemy import MetaData, Table, select

from smartcity.core.auth import Identity
from smartcity.opendata import publishing
from smartcity.opendata.models import Resource

PUBLISHER = Identity(username="pub", role="data_publisher", via="session")


def publish(db, dataset: str, data: bytes, filename: str, **options) -> publishing.Published:
    """Publish `data` as a resource of `dataset` (made first if missing), in one transaction."""
    with db.session() as s:
        if s.scalar(select(publishing.Dataset.id).where(publishing.Dataset.name == dataset)) is None:
            publishing.save_dataset(s, PUBLISHER, publishing.DatasetInfo(dataset, title_ko=dataset))
        return publishing.publish_file(s, PUBLISHER, dataset, data, filename, **options)


def stored_rows(db, resource_uid: str) -> list[dict]:
    """The rows of a resource's table as the store returns them, in file order."""
    with db.session() as s:
        resource = s.scalar(select(Resource).where(Resource.uid == resource_uid))
        table = Table(resource.table, MetaData(), autoload_with=s.connection())
        return [dict(r) for r in s.execute(select(table).order_by(table.c["_id"])).mappings()]
