"""The tables as the models declare them are exactly what the migrations build: for core and for every
module, on both stores (the one place this is checked)."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Table, text

import smartcity
from smartcity.core.db import Base
from smartcity.models import load_all

PACKAGE = Path(smartcity.__file__).parent


def owners() -> list[str]:
    """Core and every module with tables or migrations of its own (a new module's folder is found here)."""
    found = {
        info.name
        for info in pkgutil.iter_modules([str(PACKAGE)])
        if info.ispkg
        and ((PACKAGE / info.name / "models.py").exists() or (PACKAGE / info.name / "migrations").is_dir())
    }
    return ["core", *sorted(found - {"core"})]


def tables_of(owner: str) -> set[str]:
    """The tables declared by the models of `owner` (core: smartcity.core.*; a module: smartcity.<module>.*)."""
    load_all()
    return {
        table.name
        for mapper in Base.registry.mappers
        for table in mapper.tables
        if mapper.class_.__module__.split(".")[1] == owner
    }


def table_named_in(change) -> str | None:
    """The table an Alembic autogenerate change is about: ("add_table", Table), ("add_index", Index),
    ("add_column", schema, table, Column), ("add_fk", ForeignKeyConstraint), [("modify_type", …)]."""
    if isinstance(change, list):  # modify_* changes of one column come grouped
        return table_named_in(change[0])
    for part in change[1:]:
        if isinstance(part, Table):
            return part.name
        if isinstance(getattr(part, "table", None), Table):  # indexes, unique and check constraints
            return part.table.name
        if isinstance(getattr(part, "parent", None), Table):  # foreign keys
            return part.parent.name
    return change[2] if len(change) > 2 and isinstance(change[2], str) else None


def differences(db, owner: str) -> list:
    """Every difference between the migrated store and the models that concerns `owner`'s tables; for core
    also the changes about tables no model declares (a migration that builds what nothing maps)."""
    load_all()
    with db.engine.connect() as conn:
        # A PostgreSQL table partitioned by time (safety_positions) has partitions the store makes by day: they are
        # the declared table's storage, not tables of their own.
        partitions = set(
            conn.execute(text("SELECT relname FROM pg_class WHERE relispartition")).scalars() if db.is_postgres else ()
        )
        # An SQLite full-text table (FTS5, made by a migration over a declared table) and its shadow tables are
        # that table's index, not tables of their own.
        full_text = set(
            ()
            if db.is_postgres
            else conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'")
            ).scalars()
        )
        shadows = ("data", "idx", "content", "docsize", "config")
        partitions |= full_text | {f"{name}_{part}" for name in full_text for part in shadows}
        opts = {
            "compare_type": True,
            "compare_server_default": True,
            "include_name": lambda name, kind, _parent: not (kind == "table" and name in partitions),
        }
        context = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(context, Base.metadata)
    declared = set(Base.metadata.tables)
    mine = tables_of(owner)
    return [
        change
        for change in diff
        if table_named_in(change) in mine or (owner == "core" and table_named_in(change) not in declared)
    ]


def test_core_and_the_modules_are_found():
    found = owners()
    assert found[0] == "core" and len(found) > 1, found
    assert all(tables_of(owner) for owner in found), {owner: tables_of(owner) for owner in found}


@pytest.mark.parametrize("owner", owners())
def test_the_migrations_build_what_the_models_declare(db, owner):
    assert differences(db, owner) == []


def test_the_check_sees_a_column_and_an_index_the_models_do_not_declare(db):
    """The comparison above can fail: a column a migration would add without the model, and an index it
    would drop, are both reported for the table's owner and for no one else."""
    module = owners()[1]
    tables = [Base.metadata.tables[name] for name in sorted(tables_of(module))]
    table = next((t for t in tables if t.indexes), tables[0])
    index = sorted(table.indexes, key=lambda i: i.name)[0] if table.indexes else None
    with db.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN stray_column INTEGER"))
        if index is not None:
            conn.execute(text(f"DROP INDEX {index.name}"))
    found = differences(db, module)
    assert [c[0] for c in found if c[0] == "remove_column" and c[3].name == "stray_column"] == ["remove_column"]
    if index is not None:
        assert [c[1].name for c in found if c[0] == "add_index"] == [index.name]
    assert differences(db, "core") == []
