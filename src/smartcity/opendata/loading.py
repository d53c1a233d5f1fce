"""Reading a CSV, XLSX, JSON, GeoJSON or Parquet file into typed columns: encoding, quoting, and types
inferred over the whole file.

A column's type is the narrowest of boolean, integer, float, date, datetime and text that its non-empty
values fit — all of them, setting aside a few (at most `MISFIT_SHARE`) that fit no type but text: real files
carry a few broken values in an otherwise clean column (Gangnam's dumping records: "##########" in 2,600 of
28,000 dates), and typing the whole column as text for them would hide both the column's meaning and the
defects. A value that does not fit its column's type is reported with its line and kept as written in the
row's `_problems`, its cell left empty: nothing is lost, and the load goes on. A row whose fields do not
match the header (broken quoting) is reported and left out.
"""

from __future__ import annotations

import csv
import gc
import io
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from smartcity.core.errors import InvalidInput
from smartcity.core.i18n import N_
from smartcity.core.text import decode_korean

TYPES = ("boolean", "integer", "float", "date", "datetime", "text")
MISFIT_SHARE = 0.10  # at most this share of a column's values may miss its type (each one is reported)
MAX_REPORTED = 1000  # problems kept in a version's record (all are counted)
_IDENT_BYTES = 63  # PostgreSQL's identifier limit: a column's name must fit it on both stores

csv.field_size_limit(16 * 1024 * 1024)


@dataclass(frozen=True)
class Column:
    """A column as stored: `id` (its name in the table and the APIs), `type`, `label` (the header as written)."""

    id: str
    type: str
    label: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "type": self.type, "label": self.label}


@dataclass(frozen=True)
class Problem:
    """A defect of the file: its line (1 is the header), the column, the value as written and what is wrong."""

    line: int
    column: str | None
    value: str
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "value": self.value, "problem": self.problem}


@dataclass
class RawTable:
    """A file's header and rows as read (text cells, or typed cells from a spreadsheet), each with its line."""

    header: list[str]
    rows: list[tuple[int, list[Any]]]
    encoding: str
    problems: list[Problem] = field(default_factory=list)


class Rows(Sequence):
    """A loaded file's rows, (values, misfits as {column: value}), made from its typed columns when asked for:
    the store takes the columns as they are, so a million-row file is never held as a million row tuples."""

    def __init__(self, columns: list[list[Any]], misfits: dict[int, dict[str, str]], count: int) -> None:
        self.typed_columns, self.misfits, self._count = columns, misfits, count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(self._count))]
        if k < 0:
            k += self._count
        if not 0 <= k < self._count:
            raise IndexError(k)
        return tuple(c[k] for c in self.typed_columns), self.misfits.get(k, _NONE)

    def __iter__(self) -> Iterator[tuple[Sequence[Any], dict[str, str]]]:
        misfits = self.misfits
        values = zip(*self.typed_columns, strict=True) if self.typed_columns else iter(() for _ in range(self._count))
        for k, row in enumerate(values):
            yield row, misfits.get(k, _NONE)


_NONE: dict[str, str] = {}  # the misfits of a row without any (shared, never changed)


@dataclass
class Loaded:
    """A file made typed: its columns, rows (values per column, then the row's misfits as {column: value}),
    every problem found, and how the file was read."""

    columns: list[Column]
    rows: Sequence[tuple[Sequence[Any], dict[str, str]]]
    problems: list[Problem]
    problem_count: int
    encoding: str


@contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: a load makes millions of cells and row tuples, none of them in a
    cycle, and each collection would walk them all again (a quarter of a million-row load's time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# --- reading ------------------------------------------------------------------------------------------


def column_ids(header: Sequence[str]) -> list[str]:
    """Safe, unique column names from a header: control characters and quotes dropped, names starting with
    an underscore (ours) prefixed, empty ones numbered, each at most 63 bytes of UTF-8."""
    ids: list[str] = []
    seen: set[str] = set()
    for n, raw in enumerate(header, 1):
        name = re.sub(r"\s+", " ", re.sub(r'[\x00-\x1f\x7f"`]', "", str(raw or ""))).strip()
        if not name:
            name = f"column_{n}"
        if name.startswith("_"):
            name = f"c{name}"
        name = _fit(name, _IDENT_BYTES)
        base, k = name, 2
        while name.lower() in seen:
            suffix = f"_{k}"
            name = _fit(base, _IDENT_BYTES - len(suffix)) + suffix
            k += 1
        seen.add(name.lower())
        ids.append(name)
    return ids


def _fit(text: str, limit: int) -> str:
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode(errors="ignore")


# A loadable file's format (the resource's, shown in the catalogue's format facet) by its name's extension.
FORMATS = {
    "csv": "CSV",
    "tsv": "CSV",
    "txt": "CSV",
    "": "CSV",
    "xlsx": "XLSX",
    "json": "JSON",
    "geojson": "GeoJSON",
    "parquet": "Parquet",
}
EXTENSIONS = tuple(f".{e}" for e in FORMATS if e)


def format_of(filename: str) -> str:
    """The format of a file loadable by its name; a name no reader takes is refused."""
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix not in FORMATS:
        raise InvalidInput(
            N_("only CSV, XLSX, JSON, GeoJSON and Parquet files can be loaded, not {name}"),
            code="format",
            params={"name": filename},
        )
    return FORMATS[suffix]


def read_file(data: bytes, filename: str) -> RawTable:
    """A CSV, XLSX, JSON, GeoJSON or Parquet file as a header and rows; a file that is not what its name
    says is refused."""
    fmt = format_of(filename)
    if fmt == "XLSX":
        return read_xlsx(data)
    if fmt == "JSON":
        return read_json(data)
    if fmt == "GeoJSON":
        return read_geojson(data)
    if fmt == "Parquet":
        return read_parquet(data)
    return read_csv(data)


def _parsed_json(data: bytes, what: str) -> tuple[Any, str]:
    import json

    text, encoding = decode_korean(data, code="format")
    try:
        return json.loads(text), encoding
    except ValueError as exc:
        raise InvalidInput(
            N_("the file is not a {kind} document"), code="format", params={"kind": what}, details=str(exc)
        ) from None


def _cell(v: Any) -> Any:
    """A JSON or Parquet value as a cell: nested values as their JSON text, exact decimals and anything
    else without a column type as their text (the type inference reads them from it)."""
    import json

    if v is None or isinstance(v, str | bool | int | float | date):
        return v
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _records_table(
    records: Sequence[Any], encoding: str, extra: Callable[[Any], dict[str, Any]] | None = None
) -> RawTable:
    """Objects as rows, the header every key in order of first appearance; the n-th record is "line" n.
    A record that is not an object is reported and left out."""
    header: dict[str, None] = {}
    kept: list[tuple[int, dict[str, Any]]] = []
    problems: list[Problem] = []
    for n, record in enumerate(records, 1):
        try:
            values = extra(record) if extra else record
        except ValueError as exc:
            problems.append(Problem(n, None, "" if record is None else str(_cell(record))[:200], str(exc)))
            continue
        if not isinstance(values, dict):
            problems.append(Problem(n, None, str(_cell(values))[:200], "not an object"))
            continue
        header.update(dict.fromkeys(str(k) for k in values))
        kept.append((n, values))
    if not header:
        raise InvalidInput(N_("the file has no records"), code="empty")
    names = list(header)
    rows = [(n, [_cell(values.get(name)) for name in names]) for n, values in kept]
    return RawTable(names, rows, encoding, problems)


def _record_list(found: Any, depth: int = 0) -> list[Any] | None:
    """The records of a JSON document: the document itself if it is a list, else the one list of objects
    inside it (a CKAN answer's `result.records`, a Seoul OpenAPI answer's `SERVICE.row`)."""
    if isinstance(found, list):
        return found
    if not isinstance(found, dict) or depth > 2:
        return None
    lists = [v for v in found.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if len(lists) == 1:
        return lists[0]
    inner = [r for r in (_record_list(v, depth + 1) for v in found.values() if isinstance(v, dict)) if r]
    return inner[0] if len(inner) == 1 else None


def read_json(data: bytes) -> RawTable:
    found, encoding = _parsed_json(data, "JSON")
    records = _record_list(found)
    if records is None:
        raise InvalidInput(N_("the JSON file holds no list of records"), code="format")
    return _records_table(records, encoding)


def read_geojson(data: bytes) -> RawTable:
    """A FeatureCollection: each feature's properties, a Point's position as `longitude` and `latitude`
    (what the map and the GeoJSON download look for), any other geometry as its GeoJSON text."""
    found, encoding = _parsed_json(data, "GeoJSON")
    if (
        not isinstance(found, dict)
        or found.get("type") != "FeatureCollection"
        or not isinstance(found.get("features"), list)
    ):
        raise InvalidInput(N_("the file is not a GeoJSON FeatureCollection"), code="format")
    features = found["features"]
    taken = {str(k) for f in features if isinstance(f, dict) for k in (f.get("properties") or {})}
    lon, lat = ("longitude", "latitude") if not {"longitude", "latitude"} & taken else ("_longitude", "_latitude")

    def properties(feature: Any) -> dict[str, Any]:
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise ValueError("not a GeoJSON Feature")
        values = dict(feature.get("properties") or {})
        geometry = feature.get("geometry")
        if isinstance(geometry, dict) and geometry.get("type") == "Point":
            position = geometry.get("coordinates")
            if (
                not isinstance(position, list)
                or len(position) < 2
                or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in position[:2])
                or not (-180 <= position[0] <= 180 and -90 <= position[1] <= 90)
            ):
                raise ValueError("a Point without a longitude and latitude")
            values[lon], values[lat] = position[0], position[1]
        elif geometry is not None:
            values["geometry"] = geometry
        return values

    return _records_table(features, encoding, properties)


def read_parquet(data: bytes) -> RawTable:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise InvalidInput(N_("the file is not a Parquet file"), code="format")
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInput(N_("the file is not a Parquet file"), code="format", details=str(exc)) from None
    if not table.column_names:
        raise InvalidInput(N_("the file has no records"), code="empty")
    columns = [[_cell(v) for v in table.column(i).to_pylist()] for i in range(table.num_columns)]
    rows = [(n, list(cells)) for n, cells in enumerate(zip(*columns, strict=True), 1)]
    return RawTable([str(c) for c in table.column_names], rows, "parquet")


def read_csv(data: bytes) -> RawTable:
    if data[:4] == b"PK\x03\x04" or b"\x00" in data[:8192]:
        raise InvalidInput(
            N_("the file is not a text CSV file (it looks like a binary or spreadsheet file)"), code="format"
        )
    text, encoding = decode_korean(data)
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",\t;|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    fast = _read_whole(text, delimiter, encoding)
    if fast is not None:
        return fast
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    problems: list[Problem] = []
    header: list[str] | None = None
    rows: list[tuple[int, list[Any]]] = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(start, None, "", f"broken quoting: {exc}"))
            continue
        if header is None:
            if not any(cell.strip() for cell in row):
                continue
            header = row
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            shown = delimiter.join(row)
            problems.append(
                Problem(
                    start, None, shown[:200], f"{len(row)} fields where the header has {len(header)} (broken quoting?)"
                )
            )
            continue
        rows.append((start, row))
    if header is None:
        raise InvalidInput(N_("the file has no header row"), code="empty")
    return RawTable(header, rows, encoding, problems)


def _read_whole(text: str, delimiter: str, encoding: str) -> RawTable | None:
    """The common file read in one C call: a header on the first line, then one record a line and every
    record the header's width, so that a record's line is its place. None when the file is anything else
    (blank lines, a value over several lines, a broken record): the line-by-line reading then tells where."""
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error:
        return None
    if not records or not any(cell.strip() for cell in records[0]):
        return None
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    width = len(records[0])
    if lines != len(records) or ("\r" in text and "\r" in text.replace("\r\n", "")) or width < 2:
        return None
    if any(len(r) != width for r in records):
        return None
    header = records[0]
    return RawTable(header, list(zip(range(2, len(records) + 1), records[1:], strict=True)), encoding)  # type: ignore[arg-type]


def read_xlsx(data: bytes) -> RawTable:
    import zipfile

    from openpyxl import load_workbook

    if data[:4] != b"PK\x03\x04":
        raise InvalidInput(N_("the file is not an XLSX workbook"), code="format")
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InvalidInput(N_("the file is not an XLSX workbook"), code="format", details=str(exc)) from None
    try:
        sheet = book.worksheets[0]
        header: list[str] | None = None
        rows: list[tuple[int, list[Any]]] = []
        for line, values in enumerate(sheet.iter_rows(values_only=True), 1):
            cells = list(values)
            if header is None:
                if any(c not in (None, "") for c in cells):
                    header = ["" if c is None else str(c) for c in cells]
                continue
            if all(c in (None, "") for c in cells):
                continue
            cells = (cells + [None] * len(header))[: len(header)]
            rows.append((line, cells))
    finally:
        book.close()
    if header is None:
        raise InvalidInput(N_("the file has no header row"), code="empty")
    return RawTable(header, rows, "xlsx")


# --- types --------------------------------------------------------------------------------------------

_INT = re.compile(r"[+-]?(0|[1-9]\d*|[1-9]\d{0,2}(,\d{3})+)")
# No leading zero before the point: "06236" is a postcode, not a number.
_FLOAT = re.compile(r"[+-]?((0|[1-9]\d*|[1-9]\d{0,2}(,\d{3})+)(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_TRUE = {"true", "t", "yes", "y", "예", "참"}
_FALSE = {"false", "f", "no", "n", "아니오", "거짓"}
_DATE = re.compile(r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})\.?")
_DATETIME = re.compile(
    r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})\.?[T ]\s*(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)
_BIG = 2**63
_ANY_SHAPE = re.compile(
    "|".join(
        [
            "|".join(re.escape(w) for w in sorted(_TRUE | _FALSE, key=len, reverse=True)),
            r"(?i:true|false|yes|no|t|f|y|n)",
            _FLOAT.pattern,
            _DATETIME.pattern,
            _DATE.pattern,
        ]
    )
)


def _integer(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if v.is_integer():
            return int(v)
        raise ValueError
    if not isinstance(v, str) or not _INT.fullmatch(v):
        raise ValueError
    n = int(v.replace(",", ""))
    if not -_BIG <= n < _BIG:
        raise ValueError
    return n


def _float(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError
    if isinstance(v, int | float):
        return float(v)
    if not isinstance(v, str) or not _FLOAT.fullmatch(v):
        raise ValueError
    return float(v.replace(",", ""))


def _boolean(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    word = str(v).lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError


def _date(v: Any) -> date:
    if isinstance(v, datetime):
        if v.time() != datetime.min.time():
            raise ValueError
        return v.date()
    if isinstance(v, date):
        return v
    m = _DATE.fullmatch(v) if isinstance(v, str) else None
    if not m:
        raise ValueError
    return date(int(m[1]), int(m[2]), int(m[3]))


def _datetime(v: Any) -> datetime:
    """A time as written (naive: local to the data); one with a zone is kept in UTC."""
    if isinstance(v, datetime):
        return v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day)
    if not isinstance(v, str):
        raise ValueError
    m = _DATETIME.fullmatch(v)
    if not m:
        return datetime.combine(_date(v), datetime.min.time())
    fraction = int((m[7] or "0").ljust(6, "0"))
    found = datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0), fraction)
    if m[8]:
        zone = m[8] if m[8] != "Z" else "+00:00"
        found = datetime.fromisoformat(found.isoformat() + (zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"))
        found = found.astimezone(UTC).replace(tzinfo=None)
    return found


def _text(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


PARSERS: dict[str, Callable[[Any], Any]] = {
    "boolean": _boolean,
    "integer": _integer,
    "float": _float,
    "date": _date,
    "datetime": _datetime,
    "text": _text,
}


def _empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _fits(parse: Callable[[Any], Any], v: Any) -> bool:
    try:
        parse(v)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


# Whole-column checks: one regular expression over the column's values joined by a separator no value holds,
# instead of a parser call per value (a million-row file has millions of cells). A column they accept still
# goes through the per-value parsers where a shape is not enough (a 30th of February), so they only decide
# faster, never differently.
_SEP = "\x1f"
_BULK = {
    "integer": re.compile(r"(?:[+-]?(?:0|[1-9]\d{0,17})\x1f)*"),
    "float": re.compile(r"(?:[+-]?(?:(?:0|[1-9]\d*)(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\x1f)*"),
    "date": re.compile(r"(?:\d{4}-\d{2}-\d{2}\x1f)*"),
}
_FAST = {"integer": int, "float": float, "date": date.fromisoformat}


def _joined_strings(values: Sequence[Any]) -> str | None:
    try:
        joined = _SEP.join(values) + _SEP
    except TypeError:  # a spreadsheet's typed cells
        return None
    return joined if joined.count(_SEP) == len(values) else None


def _bulk_convert(kind: str, values: Sequence[Any]) -> list[Any] | None:
    """Every value converted at once, when the whole column has the simple shape of `kind`; else None."""
    pattern = _BULK.get(kind)
    joined = _joined_strings(values) if pattern is not None else None
    if joined is None or not pattern.fullmatch(joined):
        return None
    try:
        return list(map(_FAST[kind], values))
    except ValueError:
        return None


def _narrowest(values: Sequence[Any]) -> str | None:
    """The narrowest type other than text that every value fits, if any."""
    return _narrowest_converted(values)[0]


def _narrowest_converted(values: Sequence[Any]) -> tuple[str | None, list[Any] | None]:
    """The narrowest type other than text that every value fits, and the values converted when the whole
    column's shape decided it (so that they are not converted a second time)."""
    joined = _joined_strings(values)
    for kind in TYPES[:-1]:
        # The shape is enough for int() and float(); a date's shape may still be no date (30 February).
        if joined is not None and kind in _BULK and _BULK[kind].fullmatch(joined):
            try:
                return kind, list(map(_FAST[kind], values))
            except ValueError:
                pass
        parse = PARSERS[kind]
        if all(_fits(parse, v) for v in values):
            return kind, None
    return None, None


def _present(values: Iterator[Any] | Sequence[Any]) -> list[Any]:
    """The non-empty values, stripped."""
    values = list(values)
    try:
        return [v for v in (x.strip() for x in values) if v]
    except AttributeError:  # not all text: a spreadsheet's cells
        return [v.strip() if isinstance(v, str) else v for v in values if not _empty(v)]


def infer_type(values: Iterator[Any] | Sequence[Any]) -> str:
    """The narrowest type all non-empty values fit, setting aside a few (at most MISFIT_SHARE) that fit no
    type but text — broken values, reported when the rows are typed; text if nothing else fits."""
    return _infer_present(_present(values))


def _infer_present(present: Sequence[Any]) -> str:
    return _infer_converted(present)[0]


def _infer_converted(present: Sequence[Any]) -> tuple[str, list[Any] | None]:
    if not present:
        return "text", None
    found, converted = _narrowest_converted(present)
    if found is not None:
        return found, converted
    allowed = int(len(present) * MISFIT_SHARE)
    parsers = [PARSERS[k] for k in TYPES[:-1]]
    rest, broken = [], 0
    for v in present:
        # A text value is tested by one pattern of every type's shape before any parser is tried.
        if (not isinstance(v, str) or _ANY_SHAPE.fullmatch(v)) and any(_fits(parse, v) for parse in parsers):
            rest.append(v)
        else:
            broken += 1
            if broken > allowed:
                return "text", None
    return (_narrowest(rest) if rest else None) or "text", None


def make_typed(raw: RawTable, types: dict[str, str] | None = None) -> Loaded:
    """The file's rows typed by column (inferred over every row, or as `types` declares by column id)."""
    ids = column_ids(raw.header)
    declared = types or {}
    unknown = [name for name in declared if name not in ids]
    if unknown:
        raise InvalidInput(
            N_("no column named {names} in the file"), code="column", params={"names": ", ".join(unknown)}
        )
    bad = sorted({t for t in declared.values() if t not in TYPES})
    if bad:
        raise InvalidInput(N_("unknown column type {types}"), code="type", params={"types": ", ".join(bad)})
    lines = [line for line, _ in raw.rows]
    by_column = [list(col) for col in zip(*(cells for _, cells in raw.rows), strict=True)] or [[] for _ in ids]
    kinds: list[str] = []
    found: list[tuple[int, str, str, str]] = []  # (line, column, value, kind) of every value not fitting
    misfits: dict[int, dict[str, str]] = {}
    typed_columns = []
    for i, cid in enumerate(ids):
        try:
            cells = [x.strip() for x in by_column[i]]
            present = None if all(cells) else [k for k, v in enumerate(cells) if v]  # None: every cell
        except AttributeError:  # a spreadsheet's typed cells
            cells = [x.strip() if isinstance(x, str) else x for x in by_column[i]]
            present = [k for k, v in enumerate(cells) if not _empty(v)]
        picked = cells if present is None else [cells[k] for k in present]
        converted: list[Any] | None = None
        kind = declared.get(cid)
        if kind is None:
            kind, converted = _infer_converted(picked)
        kinds.append(kind)
        if converted is None and kind == "text":
            converted = [v if isinstance(v, str) else _text(v) for v in picked]
        elif converted is None and kind in _BULK:
            converted = _bulk_convert(kind, picked)
        if converted is None:
            parse = PARSERS[kind]
            converted = []
            for n, v in enumerate(picked):
                try:
                    converted.append(parse(v))
                except (ValueError, TypeError, OverflowError):
                    converted.append(None)
                    k = n if present is None else present[n]
                    misfits.setdefault(k, {})[cid] = str(v)
                    found.append((lines[k], cid, str(v), kind))
        if present is None:
            typed_columns.append(converted)
        else:
            values: list[Any] = [None] * len(cells)
            for k, v in zip(present, converted, strict=True):
                values[k] = v
            typed_columns.append(values)
    columns = [Column(cid, kind, str(label)) for cid, kind, label in zip(ids, kinds, raw.header, strict=True)]
    found.sort(key=lambda f: f[0])
    problems = sorted(
        [*raw.problems, *(Problem(line, cid, v[:200], f"not a {kind}") for line, cid, v, kind in found[:MAX_REPORTED])],
        key=lambda p: p.line,
    )[:MAX_REPORTED]
    rows = Rows(typed_columns, misfits, len(raw.rows))
    return Loaded(columns, rows, problems, len(raw.problems) + len(found), raw.encoding)


def load_bytes(data: bytes, filename: str, types: dict[str, str] | None = None) -> Loaded:
    """A loadable file's bytes (see `read_file`), typed."""
    with no_gc():
        return make_typed(read_file(data, filename), types)
