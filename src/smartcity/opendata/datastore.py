"""Reading a resource's rows: CKAN's datastore_search (filters, q, distinct, fields, sort, paging) and
datastore_search_sql (one read-only SELECT over published resources' tables, checked before it runs).

Only resources of published datasets are read. Identifiers never come from input: a field is one of the
resource's own columns (checked against its list), and in SQL a table is a published resource's id,
rewritten to its table; everything else is refused before the store sees it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, DateTime, Table, Text, and_, bindparam, cast, func, or_, select
from sqlalchemy.orm import Session

from smartcity.core.errors import InvalidInput, NotFound, PermissionDenied
from smartcity.core.i18n import N_
from smartcity.opendata import storage
from smartcity.opendata.models import Dataset, Resource

LIMIT_DEFAULT = 100
LIMIT_MAX = 32_000  # CKAN's ckan.datastore.search.rows_max
SQL_ROW_CAP = 32_000  # rows datastore_search_sql answers at most (records_truncated beyond)
SQL_TIME_LIMIT_S = 5.0
CKAN_TYPES = {
    "integer": "int",
    "float": "numeric",
    "boolean": "bool",
    "date": "date",
    "datetime": "timestamp",
    "text": "text",
}
HIDDEN = ("_hash", "_problems")


class FieldError(InvalidInput):
    """A request naming something the resource does not have (CKAN's Validation Error, with the field)."""

    # Positional-only: a message's own parameter may be called `field` ("{field} must be an integer").
    def __init__(self, name: str, message: str, /, **params: Any):
        super().__init__(message, code="validation", params=params, details={name: [message.format(**params)]})


@dataclass
class Readable:
    """A published resource's table and columns."""

    resource: Resource
    dataset: Dataset
    table: Table


def readable(session: Session, resource_id: str) -> Readable:
    """The resource `resource_id` (its uid) of a published dataset, with rows; else NotFound."""
    found = session.execute(
        select(Resource, Dataset)
        .join(Dataset, Dataset.id == Resource.dataset_id)
        .where(Resource.uid == str(resource_id))
    ).first()
    if found is None or found[0].table is None:
        raise NotFound(N_('Resource "{id}" was not found.'), params={"id": resource_id})
    resource, dataset = found
    if not dataset.published:
        raise PermissionDenied(N_("Not authorized to read resource {id}"), params={"id": resource_id})
    return Readable(resource, dataset, storage.table_of(resource.table, resource.columns))


def _fields(columns: list[dict]) -> list[dict[str, Any]]:
    return [{"id": "_id", "type": "int"}] + [
        {"id": c["id"], "type": CKAN_TYPES[c["type"]], "info": {"label": c.get("label", c["id"])}} for c in columns
    ]


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):  # PostgreSQL's sum() and numeric arithmetic
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _list(value: Any, field: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise FieldError(field, N_("{field} must be a list of field names"), field=field)


def _column(table: Table, name: str, field: str):
    if name in HIDDEN or name not in table.c:
        raise FieldError(field, N_('field "{name}" not in resource'), name=name)
    return table.c[name]


def _value(column, raw: Any) -> Any:
    """A filter's value as the column's type (a value that cannot be one matches nothing, as in CKAN)."""
    from smartcity.opendata.loading import PARSERS

    kind = next((k for k, t in storage.SQL_TYPES.items() if isinstance(column.type, t)), "text")
    if column.name == "_id":
        kind = "integer"
    try:
        return PARSERS[kind](raw if isinstance(raw, str) else raw)
    except (ValueError, TypeError, OverflowError):
        raise FieldError(
            "filters", N_('"{value}" is not a valid value for field "{name}"'), value=raw, name=column.name
        ) from None


def search(
    session: Session,
    resource_id: str,
    *,
    filters: dict | None = None,
    q: str | dict | None = None,
    distinct_rows: bool = False,
    fields: Any = None,
    sort: str | None = None,
    limit: int = LIMIT_DEFAULT,
    offset: int = 0,
    include_total: bool = True,
    records_format: str = "objects",
) -> dict[str, Any]:
    """CKAN's datastore_search on a published resource."""
    r = _located(session, resource_id)
    if not isinstance(limit, int) or limit < 0:
        raise FieldError("limit", N_("limit must be a natural number"))
    if not isinstance(offset, int) or offset < 0:
        raise FieldError("offset", N_("offset must be a natural number"))
    if records_format not in ("objects", "lists", "csv", "tsv"):
        raise FieldError("records_format", N_("records_format must be objects, lists, csv or tsv"))
    limit = min(limit, LIMIT_MAX)
    if filters is not None and not isinstance(filters, dict):
        raise FieldError("filters", N_("filters must be an object of field: value"))
    chosen = _list(fields, "fields") or ["_id", *(c["id"] for c in r.columns)]
    shape = (
        r.table.name,
        tuple(chosen),
        tuple((name, len(v) if isinstance(v, list) else -1) for name, v in (filters or {}).items()),
        sort or "",
        distinct_rows,
    )
    # Free-text words are part of the statement (escaped LIKE patterns): such a statement is not kept.
    prepared = _prepare(r.table, r.columns, shape, q) if q else _prepared(r.table, r.columns, shape)
    values = {f"f{i}": _filter_values(r.table, name, v) for i, (name, v) in enumerate((filters or {}).items())}
    rows = session.execute(prepared.page, {**values, "limit": limit, "offset": offset}).all()
    result: dict[str, Any] = {
        "resource_id": r.uid,
        "fields": [f for f in _fields(r.columns) if f["id"] in chosen],
        "limit": limit,
        "offset": offset,
        "records_format": records_format,
        "include_total": include_total,
        "filters": filters or {},
        "_links": {
            "start": f"/api/3/action/datastore_search?resource_id={r.uid}",
            "next": f"/api/3/action/datastore_search?resource_id={r.uid}&offset={offset + limit}",
        },
    }
    if q:
        result["q"] = q
    if sort:
        result["sort"] = sort
    if include_total:
        result["total"] = _total(session, r, prepared, shape, q, values)
        result["total_was_estimated"] = False
    result["records"] = _records(_as_json(rows, prepared.columns), chosen, records_format)
    return result


@dataclass(frozen=True)
class _Located:
    """What datastore_search needs of a published resource, read as one row (no ORM objects)."""

    uid: str
    version: int
    row_count: int | None
    columns: list[dict]
    table: Table


_LOCATE = (
    select(Resource.uid, Resource.version, Resource.row_count, Resource.columns, Resource.table, Dataset.published)
    .join(Dataset, Dataset.id == Resource.dataset_id)
    .where(Resource.uid == bindparam("uid"))
)


def _located(session: Session, resource_id: str) -> _Located:
    found = session.execute(_LOCATE, {"uid": str(resource_id)}).first()
    if found is None or found.table is None:
        raise NotFound(N_('Resource "{id}" was not found.'), params={"id": resource_id})
    if not found.published:
        raise PermissionDenied(N_("Not authorized to read resource {id}"), params={"id": resource_id})
    columns = found.columns or []
    return _Located(found.uid, found.version, found.row_count, columns, storage.table_of(found.table, columns))


@dataclass(frozen=True)
class _Prepared:
    """A search's statements with their filter values as parameters (f0, f1, …, limit, offset): built once
    per resource table and request shape, then only executed (building the expression was a fifth of a
    request's time)."""

    columns: list[Any]
    page: Any
    count: Any
    filtered: bool


_PREPARED_MAX = 256
_prepared_cache: OrderedDict[tuple, _Prepared] = OrderedDict()
_COUNTS_MAX = 10_000
_counts: OrderedDict[tuple, int] = OrderedDict()
_cache_lock = threading.Lock()


def _prepared(table: Table, columns: list[dict], shape: tuple) -> _Prepared:
    key = (tuple((c["id"], c["type"]) for c in columns), shape)
    with _cache_lock:
        found = _prepared_cache.get(key)
        if found is not None:
            _prepared_cache.move_to_end(key)
            return found
    found = _prepare(table, columns, shape, None)
    with _cache_lock:
        _prepared_cache[key] = found
        while len(_prepared_cache) > _PREPARED_MAX:
            _prepared_cache.popitem(last=False)
    return found


def _prepare(table: Table, resource_columns: list[dict], shape: tuple, q: str | dict | None) -> _Prepared:
    _, chosen, filtered, sort, distinct_rows = shape
    columns = [_column(table, name, "fields") for name in chosen]
    where = []
    for i, (name, n) in enumerate(filtered):
        column = _column(table, name, "filters")
        param = bindparam(f"f{i}", expanding=True) if n >= 0 else bindparam(f"f{i}")
        where.append(column.in_(param) if n >= 0 else column == param)
    texts = [table.c[c["id"]] for c in resource_columns if c["type"] == "text"]
    if isinstance(q, dict):
        for name, words in q.items():
            column = _column(table, name, "q")
            where.append(func.lower(cast(column, Text)).contains(str(words).lower(), autoescape=True))
    elif q:
        for word in str(q).split():
            where.append(
                or_(*(func.lower(c).contains(word.lower(), autoescape=True) for c in texts)) if texts else False
            )
    order = []
    for part in sort.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise FieldError("sort", N_("cannot sort by {sort}"), sort=part.strip())
        column = _column(table, words[0].strip('"'), "sort")
        order.append(column.desc() if len(words) == 2 and words[1].lower() == "desc" else column.asc())
    condition = and_(*where) if where else None
    query = select(*columns)
    if distinct_rows:
        query = query.distinct()
    if condition is not None:
        query = query.where(condition)
    if not distinct_rows:
        order.append(table.c._id.asc())
    page = query.order_by(*order).limit(bindparam("limit")).offset(bindparam("offset"))
    if distinct_rows:
        counted = select(func.count()).select_from(
            select(*columns).distinct().where(*([condition] if condition is not None else [])).subquery()
        )
    else:
        counted = select(func.count()).select_from(table)
        if condition is not None:
            counted = counted.where(condition)
    return _Prepared(columns, page, counted, condition is not None or distinct_rows)


def _total(
    session: Session, r: _Located, prepared: _Prepared, shape: tuple, q: Any, values: dict[str, Any]
) -> int | None:
    """The number of rows a search matches. Without a condition, the version's own count (a million-row table
    is not scanned for each page). With one, counted once per resource version and condition, then kept: a
    version's rows never change (a new publication is a new version number), so the count stays true."""
    if not prepared.filtered and r.row_count is not None:
        return r.row_count
    if q:
        return session.scalar(prepared.count, values)
    key = (r.uid, r.version, shape, tuple((k, _hashable(v)) for k, v in values.items()))
    with _cache_lock:
        found = _counts.get(key)
        if found is not None:
            _counts.move_to_end(key)
            return found
    found = session.scalar(prepared.count, values)
    with _cache_lock:
        _counts[key] = found
        while len(_counts) > _COUNTS_MAX:
            _counts.popitem(last=False)
    return found


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _filter_values(table: Table, name: str, wanted: Any) -> Any:
    """A filter's value(s) as its column's type: a list stays a list (an IN), one value stays one (=)."""
    column = _column(table, name, "filters")
    if isinstance(wanted, list):
        return [_value(column, v) for v in wanted]
    return _value(column, wanted)


def _as_json(rows: Sequence[Sequence[Any]], columns: Sequence[Any]) -> list[Sequence[Any]]:
    """Rows with their dates and times as ISO text, converted by column: a table's columns have one type each,
    so the other values (most of them) go out as the store gave them, without a call per value."""
    timed = [i for i, c in enumerate(columns) if isinstance(c.type, Date | DateTime)]
    if not timed:
        return list(rows)
    found = []
    for row in rows:
        row = list(row)
        for i in timed:
            if row[i] is not None:
                row[i] = row[i].isoformat()
        found.append(row)
    return found


def _records(rows: list[Sequence[Any]], names: Sequence[str], records_format: str) -> Any:
    if records_format == "objects":
        return [dict(zip(names, row, strict=True)) for row in rows]
    if records_format == "lists":
        return [list(row) for row in rows]
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t" if records_format == "tsv" else ",", lineterminator="\n")
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return out.getvalue()


# --- datastore_search_sql -----------------------------------------------------------------------------


def _published_tables(session: Session) -> dict[str, str]:
    """Published resources' ids → their tables."""
    return {
        uid: table
        for uid, table in session.execute(
            select(Resource.uid, Resource.table)
            .join(Dataset, Dataset.id == Resource.dataset_id)
            .where(Dataset.published, Resource.table.is_not(None))
        )
    }


def checked_sql(session: Session, sql: str) -> tuple[str, list[str]]:
    """`sql` made safe to run: one read-only SELECT whose tables are published resources (their ids,
    rewritten to their tables) and whose functions are known ones; the SQL in the store's dialect."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

    if not isinstance(sql, str) or not sql.strip():
        raise FieldError("sql", N_("sql is missing"))
    try:
        statements = [s for s in sqlglot.parse(sql, read="postgres") if s is not None]
    except ParseError as exc:
        raise FieldError("sql", N_("cannot parse the query: {error}"), error=str(exc).splitlines()[0]) from None
    if len(statements) != 1:
        raise FieldError("sql", N_("Query is not a single statement."))
    tree = statements[0]
    if not isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except):
        raise FieldError("sql", N_("Only SELECT statements are allowed."))
    forbidden = (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter, exp.Command, exp.Into, exp.Lock)
    for node in tree.walk():
        if isinstance(node, forbidden) or (isinstance(node, exp.Select) and node.args.get("locks")):
            raise FieldError("sql", N_("Only SELECT statements are allowed."))
        if isinstance(node, exp.Anonymous):
            raise PermissionDenied(N_("Not authorized to call function {name}"), params={"name": node.name})
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    tables = _published_tables(session)
    used: list[str] = []
    for table in list(tree.find_all(exp.Table)):
        name = table.name
        if not table.args.get("db") and not table.args.get("catalog") and name in ctes:
            continue
        if table.args.get("db") or table.args.get("catalog") or name not in tables:
            raise PermissionDenied(
                N_("Not authorized to read resource {id}"), params={"id": table.sql(dialect="postgres")}
            )
        used.append(name)
        alias = table.alias or name
        table.replace(
            exp.Table(
                this=exp.to_identifier(tables[name], quoted=True),
                alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
            )
        )
    dialect = "postgres" if session.get_bind().dialect.name == "postgresql" else "sqlite"
    return tree.sql(dialect=dialect), used


def search_sql(session: Session, sql: str, row_cap: int = SQL_ROW_CAP, time_limit_s: float = SQL_TIME_LIMIT_S) -> dict:
    """CKAN's datastore_search_sql: at most `row_cap` records (`records_truncated` beyond), in a read-only
    transaction stopped after `time_limit_s`."""
    safe, _ = checked_sql(session, sql)
    wrapped = f"SELECT * FROM ({safe}) AS q LIMIT {int(row_cap) + 1}"
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    raw = conn.connection.driver_connection
    try:
        if postgres:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(time_limit_s * 1000)}")
        else:
            deadline = time.monotonic() + time_limit_s
            raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
            conn.exec_driver_sql("PRAGMA query_only = 1")
        result = conn.exec_driver_sql(wrapped)
        names = list(result.keys())
        rows = [list(r) for r in result.fetchall()]
    except Exception as exc:  # noqa: BLE001 - the store's refusal, said in the API's terms
        message = str(getattr(exc, "orig", exc)).splitlines()[0]
        if "interrupted" in message or "statement timeout" in message or "canceling statement" in message:
            raise FieldError("sql", N_("Query took too long (over {seconds} s)."), seconds=time_limit_s) from None
        raise FieldError("sql", N_("the query failed: {error}"), error=message) from None
    finally:
        if not postgres:
            raw.set_progress_handler(None, 0)
            # The connection may be in a failed state (it is rolled back then): nothing more to undo.
            with contextlib.suppress(Exception):
                conn.exec_driver_sql("PRAGMA query_only = 0")
    found: dict[str, Any] = {
        "sql": sql,
        "fields": [{"id": n, "type": _type_of(rows, i)} for i, n in enumerate(names)],
        "records": [dict(zip(names, [_json_value(v) for v in row], strict=True)) for row in rows[:row_cap]],
    }
    if len(rows) > row_cap:
        found["records_truncated"] = True
    return found


def _type_of(rows: list[list[Any]], i: int) -> str:
    for row in rows:
        v = row[i]
        if v is None:
            continue
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int):
            return "int"
        if isinstance(v, float | Decimal):
            return "numeric"
        if isinstance(v, datetime):
            return "timestamp"
        if isinstance(v, date):
            return "date"
        return "text"
    return "text"
