"""The asset table as the model declares it is exactly what the migration builds (both stores)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from smartcity.core.db import Base
from smartcity.models import load_all


def test_models_match_migrations(db):
    load_all()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert [d for d in diff if "'assets'" in repr(d) or "ix_assets" in repr(d)] == []
