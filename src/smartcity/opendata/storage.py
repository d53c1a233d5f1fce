"""Where a resource's rows live: a typed table of its own, `od_r_<resource id>`, in the same store.

Each table has our three columns first — `_id` (the row's place in the file), `_hash` (the row's content,
to compare versions), `_problems` (values that did not fit their column, as written: JSON or NULL) — then the
file's columns with their inferred types. A publication replaces the table in the caller's transaction
(DDL is transactional on SQLite and PostgreSQL): a reader sees the old rows or the new ones, never half.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    inspect,
    select,
)
from sqlalchemy.orm import Session

TABLE_PREFIX = "od_r_"
OWN = ("_id", "_hash", "_problems")
BATCH = 5000
SQL_TYPES = {
    "boolean": Boolean,
    "integer": BigInteger,
    "float": Float,
    "date": Date,
    "datetime": DateTime,
    "text": Text,
}


def table_name(resource_id: int) -> str:
    """The table of a resource: made from its integer id only, so no input reaches an identifier."""
    return f"{TABLE_PREFIX}{int(resource_id)}"


def table_of(name: str, columns: Sequence[dict]) -> Table:
    """The SQLAlchemy table `name` with our columns and `columns` ({"id", "type"}), on a metadata of its own
    (these tables are not the models': migrations and the schema check never see them).

    One Table per name and column list, kept: SQLAlchemy's compiled-statement cache is keyed by the Table
    object, so a Table made per request compiled every statement anew (a quarter of datastore_search's time).
    A new version with other columns gets a Table of its own; one with the same columns is the same table."""
    return _table(name, tuple((c["id"], c["type"]) for c in columns))


@lru_cache(maxsize=512)
def _table(name: str, columns: tuple[tuple[str, str], ...]) -> Table:
    return Table(
        name,
        MetaData(),
        Column("_id", Integer, primary_key=True, autoincrement=False),
        Column("_hash", String(40), nullable=False),
        Column("_problems", Text, nullable=True),
        *(Column(c, SQL_TYPES[kind], nullable=True) for c, kind in columns),
    )


def row_hash(values: Sequence[Any]) -> str:
    """A row's content as a short digest: of the typed values' repr, which tells 1 from "1" and None from
    "None" and is the same in every process (the digest is computed on loading, never from the store)."""
    return hashlib.sha1(repr(tuple(values)).encode()).hexdigest()


@dataclass(frozen=True)
class Diff:
    """What a publication changed against the one before."""

    added: int
    removed: int
    changed: int


def _previous(session: Session, name: str, key: str | None) -> tuple[dict[Any, str] | None, Counter | None]:
    """The current table's rows by key (key → hash) or as a multiset of hashes; (None, None) if none."""
    if not inspect(session.connection()).has_table(name):
        return None, None
    table = Table(name, MetaData(), autoload_with=session.connection())
    if key and key in table.c:
        return {k: h for k, h in session.execute(select(table.c[key], table.c._hash))}, None
    return None, Counter(session.scalars(select(table.c._hash)))


def diff(
    old_by_key: dict[Any, str] | None, old_hashes: Counter | None, new: Iterable[tuple[Any, str]], keyed: bool
) -> Diff:
    """Rows added, removed and changed: by key when the resource declares one, else by whole-row hash (a
    changed row is then one removed and one added)."""
    if old_by_key is None and old_hashes is None:  # the first version: every row is new
        return Diff(sum(1 for _ in new), 0, 0)
    if keyed and old_by_key is not None:
        seen: set[Any] = set()
        added = changed = 0
        for k, h in new:
            seen.add(k)
            before = old_by_key.get(k)
            if before is None and k not in old_by_key:
                added += 1
            elif before != h:
                changed += 1
        return Diff(added, sum(1 for k in old_by_key if k not in seen), changed)
    fresh = Counter(h for _, h in new)
    old = old_hashes or Counter()
    return Diff(sum((fresh - old).values()), sum((old - fresh).values()), 0)


def replace_rows(
    session: Session,
    resource_id: int,
    columns: Sequence[dict],
    rows: Iterable[tuple[Sequence[Any], dict[str, str]]],
    key: str | None = None,
    progress=None,
) -> tuple[int, Diff]:
    """Replace the resource's table by one holding `rows`, in the session's transaction; (rows, the diff)."""
    name = table_name(resource_id)
    conn = session.connection()
    begin_ddl(conn)
    old_by_key, old_hashes = _previous(session, name, key)
    table = table_of(name, columns)
    table.drop(conn, checkfirst=True)
    table.create(conn)
    ids = [c["id"] for c in columns]
    key_index = ids.index(key) if key in ids else None
    if hasattr(rows, "typed_columns"):
        count, seen = _insert_columns(conn, name, ids, columns, rows, key_index, progress)
        index_columns(conn, name, ids, _indexed(columns, rows.typed_columns, count, key_index))
        return count, diff(old_by_key, old_hashes, seen, key_index is not None)
    seen: list[tuple[Any, str]] = []
    count = 0
    postgres = conn.dialect.name == "postgresql"
    batch: list[tuple] = []

    def flush() -> None:
        if not batch:
            return
        if postgres:
            _copy(conn, name, ["_id", "_hash", "_problems", *ids], batch)
        else:
            placeholders = ", ".join("?" for _ in range(3 + len(ids)))
            conn.exec_driver_sql(f'INSERT INTO "{name}" VALUES ({placeholders})', [_sqlite_row(r) for r in batch])
        if progress is not None:
            progress(len(batch))
        batch.clear()

    for values, misfits in rows:
        count += 1
        digest = row_hash(values if not misfits else [*values, misfits])
        seen.append((values[key_index] if key_index is not None else None, digest))
        batch.append((count, digest, json.dumps(misfits, ensure_ascii=False) if misfits else None, *values))
        if len(batch) >= BATCH:
            flush()
    flush()
    return count, diff(old_by_key, old_hashes, seen, key_index is not None)


def _insert_columns(conn, name: str, ids: list[str], columns: Sequence[dict], rows, key_index, progress):
    """A loaded file's typed columns in, as they are: each column made ready for the store at once, the rows
    zipped from them batch by batch (no per-cell Python beyond the row's digest)."""
    typed: list[list[Any]] = rows.typed_columns
    count = len(rows)
    misfits: dict[int, dict[str, str]] = rows.misfits
    hashes = [row_hash(values) for values in zip(*typed, strict=True)] if typed else [row_hash(())] * count
    problems: list[str | None] = [None] * count
    for k, found in misfits.items():
        values = tuple(c[k] for c in typed)
        hashes[k] = row_hash([*values, found])
        problems[k] = json.dumps(found, ensure_ascii=False)
    key_values = typed[key_index] if key_index is not None else [None] * count
    seen = list(zip(key_values, hashes, strict=True))
    postgres = conn.dialect.name == "postgresql"
    stored = typed if postgres else [_sqlite_column(c["type"], col) for c, col in zip(columns, typed, strict=True)]
    names = ["_id", "_hash", "_problems", *ids]
    placeholders = ", ".join("?" for _ in names)
    raw = conn.connection.driver_connection
    step = BATCH * 10
    for start in range(0, count, step):
        end = min(start + step, count)
        batch = zip(
            range(start + 1, end + 1),
            hashes[start:end],
            problems[start:end],
            *(c[start:end] for c in stored),
            strict=True,
        )
        if postgres:
            _copy(conn, name, names, batch)
        else:
            raw.executemany(f'INSERT INTO "{name}" VALUES ({placeholders})', batch)
        if progress is not None:
            progress(end - start)
    return count, seen


INDEX_SHARE = 0.05  # a text column with at most this share of distinct values (of the rows) gets an index
INDEX_MIN_ROWS = 1000  # below, a scan is as quick as an index


def _indexed(
    columns: Sequence[dict], typed: list[list[Any]], count: int, key_index: int | None
) -> list[tuple[int, ...]]:
    """The indexes worth having, chosen from the loaded values: the key (the refresh finds rows by it), dates
    (sorted and filtered by range) and text of few distinct values (districts, categories, statuses: what
    datastore_search's filters name), each alone; and one over those text columns together, most distinct
    first, then the first date — the usual question (this district, this category, newest first) read from
    it in order. Identifiers, amounts and free text get none."""
    if count < INDEX_MIN_ROWS:
        return [(key_index,)] if key_index is not None else []
    chosen: list[tuple[int, ...]] = []
    grouping: list[tuple[int, int]] = []  # (distinct values, column)
    dates = []
    for i, (c, values) in enumerate(zip(columns, typed, strict=True)):
        if i == key_index or c["type"] in ("date", "datetime"):
            chosen.append((i,))
            if c["type"] in ("date", "datetime"):
                dates.append(i)
            continue
        if c["type"] in ("text", "boolean"):
            distinct = len(set(values))
            if 1 < distinct <= max(2, count * INDEX_SHARE):
                chosen.append((i,))
                grouping.append((distinct, i))
    if len(grouping) > 1 or (grouping and dates):
        together = tuple(i for _, i in sorted(grouping, key=lambda g: (-g[0], g[1]))[:3]) + tuple(dates[:1])
        chosen = [c for c in chosen if c != together[:1]]  # its first column's own index would be a copy
        chosen.append(together)
    return chosen


def index_columns(conn, name: str, ids: list[str], chosen: Sequence[tuple[int, ...]]) -> None:
    """An index on each chosen column or columns (named by their places: no input reaches an identifier),
    then the planner's statistics, so that it starts from the most selective one."""
    for places in chosen:
        quoted = ", ".join('"' + ids[i].replace('"', '""') + '"' for i in places)
        conn.exec_driver_sql(f'CREATE INDEX "ix_{name}_{"_".join(map(str, places))}" ON "{name}" ({quoted})')
    if not chosen:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA analysis_limit = 2000")  # sampled: quick on a million rows
    conn.exec_driver_sql(f'ANALYZE "{name}"')


def _sqlite_column(kind: str, values: list[Any]) -> list[Any]:
    # As SQLAlchemy's SQLite dialect keeps them (see _sqlite_row), a column at a time.
    if kind == "date":
        return [None if v is None else v.isoformat() for v in values]
    if kind == "datetime":
        return [None if v is None else v.isoformat(" ", "microseconds") for v in values]
    if kind == "boolean":
        return [None if v is None else int(v) for v in values]
    return values


def upsert_rows(
    session: Session, resource_id: int, columns: Sequence[dict], key: str, keys: Sequence[Any], rows
) -> Diff:
    """The rows of `keys` brought up to date in the resource's table, by `key` (`rows`: loading.Rows of the
    rows those keys have now; a key without one is a row gone): changed rows keep their `_id`, new ones
    follow the last. In the session's transaction; nothing else of the table is read."""
    table = table_of(table_name(resource_id), columns)
    conn = session.connection()
    ids = [c["id"] for c in columns]
    typed: list[list[Any]] = rows.typed_columns
    at = ids.index(key)
    new: dict[Any, tuple[str, str | None, tuple]] = {}
    for k, values in enumerate(zip(*typed, strict=True)):
        found = rows.misfits.get(k)
        digest = row_hash(values if not found else [*values, found])
        new[values[at]] = (digest, json.dumps(found, ensure_ascii=False) if found else None, values)
    wanted = list(dict.fromkeys([*keys, *new]))
    old: dict[Any, tuple[int, str]] = {}
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        query = select(table.c[key], table.c._id, table.c._hash).where(table.c[key].in_(part))
        old.update({k: (i, h) for k, i, h in conn.execute(query)})
    gone = [k for k in wanted if k in old and (k not in new or new[k][0] != old[k][1])]
    for start in range(0, len(gone), 500):
        conn.execute(table.delete().where(table.c[key].in_(gone[start : start + 500])))
    last = conn.execute(select(func.max(table.c._id))).scalar() or 0
    inserts = []
    added = changed = 0
    for k, (digest, problems, values) in new.items():
        if k in old and old[k][1] == digest:
            continue
        if k in old:
            changed += 1
            place = old[k][0]
        else:
            added += 1
            last += 1
            place = last
        inserts.append({"_id": place, "_hash": digest, "_problems": problems, **dict(zip(ids, values, strict=True))})
    if inserts:
        conn.execute(table.insert(), inserts)
    return Diff(added, sum(1 for k in old if k not in new), changed)


def begin_ddl(conn) -> None:
    """Make sure the DDL that follows is inside the transaction. Python's sqlite3 opens one only before an
    INSERT/UPDATE/DELETE: a DROP TABLE as the transaction's first write would be committed on its own, and a
    failed publication would leave the resource without its rows. IMMEDIATE: the write lock is taken (or
    waited for) now; a read snapshot upgraded later fails at once if another writer committed meanwhile."""
    if conn.dialect.name == "sqlite" and not conn.connection.driver_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_row(row: tuple) -> tuple:
    # As SQLAlchemy's SQLite dialect keeps them, so the ORM-less reads and filters compare alike.
    return tuple(
        v.isoformat(" ", "microseconds")
        if isinstance(v, datetime)
        else v.isoformat()
        if isinstance(v, date)
        else int(v)
        if isinstance(v, bool)
        else v
        for v in row
    )


def _copy(conn, name: str, names: list[str], rows: Iterable[tuple]) -> None:
    """PostgreSQL's COPY through psycopg: the fastest way in, in the session's transaction."""
    cursor = conn.connection.driver_connection.cursor()
    quoted = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
    with cursor.copy(f'COPY "{name}" ({quoted}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def drop(session: Session, resource_id: int) -> None:
    begin_ddl(session.connection())
    table_of(table_name(resource_id), []).drop(session.connection(), checkfirst=True)
