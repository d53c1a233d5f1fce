"""Alembic environment: runs the platform's migrations against the URL handed over by `db.migrate`."""

from alembic import context
from sqlalchemy import pool

from smartcity.core.db import Base, make_engine
from smartcity.models import load_all

load_all()
config = context.config
url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
engine = make_engine(url, poolclass=pool.NullPool)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
