"""A published resource's rows the Datasette way: GET /opendata/rows/{resource}.json, .csv and .parquet.

    col=v, col__exact=v, __not, __gt, __gte, __lt, __lte, __contains, __startswith, __endswith,
    __in=a,b (or a JSON list), __notin, __isnull=1, __notnull=1          filters, ANDed
    _sort=col | _sort_desc=col     one sort column (NULLs last on both stores); ties by the row key `_id`
    _size=N (≤ 1,000, or max)      a page; `_next` is the opaque token for the next one
    _facet=col (repeatable)        value counts over the filtered rows
    _shape=objects|arrays|array|object
    _stream=on                     (.csv) every filtered row, streamed from a server-side cursor

`_next` is keyset pagination: the token holds the last row's sort value and `_id`, and the next page is the
rows after that pair, so rows inserted or removed meanwhile never shift a page. Column names are checked
against the resource's own columns (identifiers never come from input); values are bound parameters typed as
their column. Errors answer in Datasette's JSON shape: {"ok": false, "error", "status", "title"}.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from sqlalchemy import Text, and_, cast, func, literal, or_, select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from smartcity.core.errors import InvalidInput, SmartCityError
from smartcity.core.i18n import N_
from smartcity.opendata import datastore
from smartcity.opendata.loading import PARSERS

router = APIRouter(tags=["opendata"])
SIZE_DEFAULT = 100
SIZE_MAX = 1000
FACET_SIZE = 30
CHUNK = 2000
SHAPES = ("objects", "arrays", "array", "object")
OPS = (
    "exact", "not", "gt", "gte", "lt", "lte", "contains", "startswith", "endswith", "in", "notin", "isnull", "notnull"
)  # fmt: skip
SPECIAL = ("_shape", "_sort", "_sort_desc", "_facet", "_next", "_size", "_stream")
MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


class RowsError(InvalidInput):
    """A rows request that names what the table lacks or says what cannot be read (400)."""

    status = 400
    code = "rows"


def render_error(request: Request, exc: SmartCityError) -> Response:
    """Datasette's error shape, whatever the extension (a CSV client gets JSON it can show)."""
    return JSONResponse(
        {"ok": False, "error": exc.message, "status": exc.status, "title": exc.code}, status_code=exc.status
    )


@dataclass
class Query:
    """A rows request, checked: filters, sort, page and facets over one published resource's table."""

    readable: datastore.Readable
    where: list = field(default_factory=list)
    sort: str = "_id"
    descending: bool = False
    size: int = SIZE_DEFAULT
    after: tuple[Any, int] | None = None
    facets: list[str] = field(default_factory=list)
    shape: str = "objects"
    stream: bool = False
    names: list[str] = field(default_factory=list)  # the columns answered: `_id` and the resource's own


def _kind(r: datastore.Readable, name: str) -> str:
    if name == "_id":
        return "integer"
    return next(c["type"] for c in r.resource.columns if c["id"] == name)


def _column(r: datastore.Readable, name: str):
    if name in datastore.HIDDEN or name not in r.table.c:
        raise RowsError(N_('no column "{name}" in this table'), params={"name": name})
    return r.table.c[name]


def _typed(r: datastore.Readable, name: str, raw: Any) -> Any:
    kind = _kind(r, name)
    try:
        return PARSERS[kind](raw)
    except (ValueError, TypeError, OverflowError):
        raise RowsError(
            N_('"{value}" is not a value of column "{name}" ({type})'),
            params={"value": raw, "name": name, "type": kind},
        ) from None


def _condition(r: datastore.Readable, name: str, op: str, raw: str):
    column = _column(r, name)
    if op in ("isnull", "notnull"):
        if raw.lower() not in ("1", "true", "on", "yes", "0", "false", "off", "no", ""):
            raise RowsError(N_("{op} takes 1 or 0"), params={"op": f"{name}__{op}"})
        wants_null = (op == "isnull") == (raw.lower() in ("1", "true", "on", "yes", ""))
        return column.is_(None) if wants_null else column.is_not(None)
    if op in ("contains", "startswith", "endswith"):
        as_text = cast(column, Text) if _kind(r, name) != "text" else column
        return getattr(as_text, op)(raw, autoescape=True)
    if op in ("in", "notin"):
        try:
            values = json.loads(raw) if raw.startswith("[") else raw.split(",")
        except ValueError:
            raise RowsError(N_("{op} takes a JSON list or values separated by commas"), params={"op": op}) from None
        if not isinstance(values, list):
            raise RowsError(N_("{op} takes a JSON list or values separated by commas"), params={"op": op})
        typed = [_typed(r, name, v if isinstance(v, str) else str(v)) for v in values]
        return column.in_(typed) if op == "in" else or_(column.not_in(typed), column.is_(None))
    value = literal(_typed(r, name, raw), column.type)  # bound as the column's type: True > False is asked too
    return {
        "exact": column == value,
        "not": or_(column != value, column.is_(None)),
        "gt": column > value,
        "gte": column >= value,
        "lt": column < value,
        "lte": column <= value,
    }[op]


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def _token(value: Any, row_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([_json_value(value), row_id]).encode()).decode().rstrip("=")


def _untoken(r: datastore.Readable, sort: str, token: str) -> tuple[Any, int]:
    try:
        value, row_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(row_id, int) or isinstance(row_id, bool):
            raise ValueError
    except (ValueError, TypeError):
        raise RowsError(N_("_next is not a token this table gave")) from None
    return (None if value is None else _typed(r, sort, value if isinstance(value, str) else str(value))), row_id


def parse(session: Session, resource: str, params: list[tuple[str, str]], ext: str) -> Query:
    """The request's query string as a checked Query (RowsError on anything the table cannot answer)."""
    r = datastore.readable(session, resource)
    q = Query(r, names=["_id", *(c["id"] for c in r.resource.columns)])
    given: dict[str, list[str]] = {}
    for key, value in params:
        given.setdefault(key, []).append(value)
    for key in ("_shape", "_sort", "_sort_desc", "_next", "_size", "_stream"):
        if len(given.get(key, [])) > 1:
            raise RowsError(N_("{name} is given more than once"), params={"name": key})
    one = {k: v[0] for k, v in given.items()}
    q.shape = one.get("_shape", "objects")
    if q.shape not in SHAPES:
        raise RowsError(N_("_shape is one of objects, arrays, array, object"))
    if "_sort" in one and "_sort_desc" in one:
        raise RowsError(N_("_sort and _sort_desc cannot both be given"))
    if "_sort" in one or "_sort_desc" in one:
        q.descending = "_sort_desc" in one
        q.sort = one.get("_sort_desc") if q.descending else one["_sort"]
        _column(r, q.sort)
    size = one.get("_size", str(SIZE_DEFAULT))
    if size == "max":
        q.size = SIZE_MAX
    elif not size.isdigit() or not 0 < int(size) <= SIZE_MAX:
        raise RowsError(N_("_size is a number from 1 to {max}"), params={"max": SIZE_MAX})
    else:
        q.size = int(size)
    if "_next" in one:
        q.after = _untoken(r, q.sort, one["_next"])
    q.stream = one.get("_stream", "").lower() in ("on", "1", "true")
    if q.stream and ext != "csv":
        raise RowsError(N_("_stream=on is for .csv"))
    q.facets = given.get("_facet", [])
    for name in q.facets:
        _column(r, name)
    for key, values in given.items():
        if key in SPECIAL:
            continue
        name, op = key.rsplit("__", 1) if "__" in key and key.rsplit("__", 1)[1] in OPS else (key, "exact")
        q.where.extend(_condition(r, name, op, value) for value in values)
    return q


def _order(q: Query) -> list:
    column, key = q.readable.table.c[q.sort], q.readable.table.c._id
    if q.sort == "_id":
        return [key.desc() if q.descending else key.asc()]
    return [(column.desc() if q.descending else column.asc()).nulls_last(), key.asc()]


def _after(q: Query):
    """Rows past the token's (sort value, _id) in the order of `_order`: NULLs come last, ties by _id."""
    value, row_id = q.after
    column, key = q.readable.table.c[q.sort], q.readable.table.c._id
    if q.sort == "_id":
        return key < row_id if q.descending else key > row_id
    if value is None:
        return and_(column.is_(None), key > row_id)
    value = literal(value, column.type)
    beyond = column < value if q.descending else column > value
    return or_(beyond, and_(column == value, key > row_id), column.is_(None))


def rows_query(q: Query, paged: bool):
    """The SELECT of `q`'s rows in order: one page (and one row more, to know of a next) or all of them."""
    table = q.readable.table
    query = select(*(table.c[n] for n in q.names))
    where = list(q.where)
    if paged and q.after is not None:
        where.append(_after(q))
    if where:
        query = query.where(*where)
    query = query.order_by(*_order(q))
    return query.limit(q.size + 1) if paged else query


@dataclass
class Page:
    """One page of rows and what goes with it."""

    names: list[str]
    rows: list[list[Any]]
    next: str | None
    count: int
    facets: dict[str, list[tuple[Any, int]]]


def page(session: Session, q: Query) -> Page:
    """The rows of one page (`q.size`, after `q.after`), the filtered count and the facets' counts."""
    table = q.readable.table
    found = [list(row) for row in session.execute(rows_query(q, paged=True))]
    following = None
    if len(found) > q.size:
        found = found[: q.size]
        last = found[-1]
        following = _token(last[q.names.index(q.sort)], last[0])
    counted = select(func.count()).select_from(table)
    count = session.scalar(counted.where(*q.where) if q.where else counted)
    facets = {}
    for name in q.facets:
        column = table.c[name]
        n = func.count().label("n")
        query = select(column, n).group_by(column).order_by(n.desc(), column.asc().nulls_last()).limit(FACET_SIZE)
        facets[name] = [(v, c) for v, c in session.execute(query.where(*q.where) if q.where else query)]
    return Page(q.names, [[_json_value(v) for v in row] for row in found], following, count, facets)


def _url(request: Request, token: str) -> str:
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "_next"]
    return f"{str(request.url).split('?', 1)[0]}?{urlencode([*kept, ('_next', token)])}"


def _json_body(request: Request, q: Query, p: Page) -> Any:
    objects = [dict(zip(p.names, row, strict=True)) for row in p.rows]
    if q.shape == "array":
        return objects
    if q.shape == "object":
        return {str(o["_id"]): o for o in objects}
    body: dict[str, Any] = {
        "ok": True,
        "resource": q.readable.resource.uid,
        "columns": p.names,
        "rows": objects if q.shape == "objects" else p.rows,
        "filtered_table_rows_count": p.count,
        "next": p.next,
        "next_url": _url(request, p.next) if p.next else None,
    }
    if q.facets:
        body["facet_results"] = {
            name: {
                "name": name,
                "results": [{"value": _json_value(v), "label": _json_value(v), "count": n} for v, n in values],
                "truncated": len(values) >= FACET_SIZE,
            }
            for name, values in p.facets.items()
        }
    return body


def _csv(names: list[str], rows: list[list[Any]], header: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(names)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return out.getvalue().encode()


def stream_rows(db, resource: str, params: list[tuple[str, str]]) -> Iterator[tuple[list[str], list[list[Any]]]]:
    """Every filtered row in order, a chunk at a time, read through a server-side cursor (psycopg's named
    cursor on PostgreSQL; SQLite's cursor steps lazily): the table is never held in memory."""
    with db.session() as s:
        q = parse(s, resource, params, "csv")
        result = s.execute(rows_query(q, paged=False), execution_options={"yield_per": CHUNK})
        for chunk in result.partitions():
            yield q.names, [[_json_value(v) for v in row] for row in chunk]


def _csv_stream(db, resource: str, params: list[tuple[str, str]]) -> Iterator[bytes]:
    header = True
    for names, chunk in stream_rows(db, resource, params):
        yield _csv(names, chunk, header)
        header = False


# --- Parquet ------------------------------------------------------------------------------------------------


def _arrow_schema(columns: list[dict]):
    import pyarrow as pa

    types = {
        "boolean": pa.bool_(),
        "integer": pa.int64(),
        "float": pa.float64(),
        "date": pa.date32(),
        "datetime": pa.timestamp("us"),
        "text": pa.string(),
    }
    return pa.schema([pa.field(c["id"], types[c["type"]]) for c in columns])


def parquet_file(db, resource: str, params: list[tuple[str, str]] | None = None) -> Path:
    """The resource's (filtered) rows as a Parquet file in a temporary place, its columns typed as the
    table's; written a row group per chunk, so memory holds one chunk. The caller removes the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with db.session() as s:
        q = parse(s, resource, params or [], "parquet")
        columns = q.readable.resource.columns
        q.names = [c["id"] for c in columns]
        schema = _arrow_schema(columns)
        handle, name = tempfile.mkstemp(suffix=".parquet")
        os.close(handle)
        try:
            with pq.ParquetWriter(name, schema) as writer:
                result = s.execute(rows_query(q, paged=False), execution_options={"yield_per": CHUNK * 5})
                for chunk in result.partitions():
                    values = list(zip(*chunk, strict=True)) if chunk else [[] for _ in q.names]
                    writer.write_batch(pa.record_batch([list(v) for v in values], schema=schema))
        except BaseException:
            os.unlink(name)
            raise
    return Path(name)


def parquet_response(db, resource: str, filename: str, params: list[tuple[str, str]] | None = None) -> Response:
    path = parquet_file(db, resource, params)
    from urllib.parse import quote

    return FileResponse(
        path,
        media_type=MEDIA["parquet"],
        headers={"content-disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}.parquet"},
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


# --- the route ----------------------------------------------------------------------------------------------


@router.get("/opendata/rows/{resource}.{ext}", include_in_schema=False)
async def rows(request: Request, resource: str, ext: str) -> Response:
    """A published resource's rows as JSON, CSV or Parquet, filtered, sorted, faceted and paged."""
    if ext not in MEDIA:
        raise RowsError(N_("rows are answered as .json, .csv or .parquet"))
    db = request.app.state.db
    params = list(request.query_params.multi_items())

    if ext == "parquet":

        def parquet() -> Response:
            with db.session() as s:
                filename = datastore.readable(s, resource).resource.name
            return parquet_response(db, resource, filename, params)

        return await run_in_threadpool(parquet)

    def answer() -> tuple[Query, Page | None]:
        with db.session() as s:
            q = parse(s, resource, params, ext)
            return q, None if q.stream else page(s, q)

    q, p = await run_in_threadpool(answer)
    if ext == "csv" and q.stream:
        return StreamingResponse(_csv_stream(db, resource, params), media_type=MEDIA["csv"])
    assert p is not None
    headers = {"link": f'<{_url(request, p.next)}>; rel="next"'} if p.next else {}
    if ext == "csv":
        return Response(_csv(p.names, p.rows, True), media_type=MEDIA["csv"], headers=headers)
    return JSONResponse(_json_body(request, q, p), headers=headers)
