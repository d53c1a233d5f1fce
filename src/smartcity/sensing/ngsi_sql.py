"""The entity query's filters as SQL, for the store to answer them with its own indexes and JSON functions:
`idPattern` and the q terms on top-level attribute values (SQLite's json_each, PostgreSQL's jsonb).

Each compiled filter selects exactly the rows the Python test (ngsi_query) admits, so when every filter of a
query compiles, the store pages and counts in SQL. What does not compile (sub-attributes, `attr[key]`,
date-times, a regex on PostgreSQL, whose regex dialect is not Python's) is left out of the SQL (an AND keeps
the parts that compile as a pre-filter; an OR with a part that does not compile is left whole to Python), and
the query says it is not exact: the rows are then tested in Python.

On SQLite the store's connection gets two functions, `ngsi_fullmatch` and `ngsi_search`, that are Python's
`re`, so idPattern and ~= mean there what they mean in Python.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, text
from sqlalchemy.orm import Session

from smartcity.sensing.ngsi_query import AllOf, AnyOf, Node, Term

TABLE = "sensing_ngsi_entities"
_SQL_OP = {"==": "=", "!=": "=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
# Regex syntax read the same way by Python's re and PostgreSQL's ARE (no look-arounds, flags, backrefs).
_PORTABLE = re.compile(r"^(?:[\w:.\-/#*+?|()\[\]{},^$]|\\[dws.\-:/#*+?|()\[\]{}$^])*$")
_META = set(".^$*+?{}[]\\|()")


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _fullmatch(pattern: str, value: Any) -> int:
    return int(isinstance(value, str) and _compiled(pattern).fullmatch(value) is not None)


def _search(pattern: str, value: Any) -> int:
    return int(isinstance(value, str) and _compiled(pattern).search(value) is not None)


def prepare(session: Session) -> None:
    """Give a SQLite connection the regex functions the compiled filters call."""
    if session.get_bind().dialect.name != "sqlite":
        return
    raw = session.connection().connection.driver_connection
    raw.create_function("ngsi_fullmatch", 2, _fullmatch, deterministic=True)
    raw.create_function("ngsi_search", 2, _search, deterministic=True)


def literal_prefix(pattern: str) -> str:
    """The text every id matching `pattern` (fully) starts with: its leading literal characters."""
    if "|" in pattern:
        return ""
    out = []
    for ch in pattern.removeprefix("^"):
        if ch in _META:
            if ch in "?*{" and out:
                out.pop()  # that character may be absent or repeated
            break
        out.append(ch)
    return "".join(out)


def id_pattern(dialect: str, pattern: str) -> tuple[list[ColumnElement], bool]:
    """SQL for idPattern: (clauses, exact)."""
    clauses: list[ColumnElement] = []
    prefix = literal_prefix(pattern)
    if prefix and dialect == "sqlite":
        # A range on the primary key (BINARY order), not LIKE (case-blind there): read from the index.
        clauses.append(
            text(f"{TABLE}.id >= :idp_low AND {TABLE}.id < :idp_high").bindparams(
                idp_low=prefix, idp_high=prefix + "\U0010ffff"
            )
        )
    elif prefix:
        # starts_with, not a range: a range is in the database's collation order, which need not be bytes.
        clauses.append(text(f"starts_with({TABLE}.id, :idp_prefix)").bindparams(idp_prefix=prefix))
    if dialect == "sqlite":
        clauses.append(text(f"ngsi_fullmatch(:idp, {TABLE}.id) = 1").bindparams(idp=pattern))
        return clauses, True
    if _PORTABLE.match(pattern):
        clauses.append(text(f"{TABLE}.id ~ :idp").bindparams(idp=f"^(?:{pattern})$"))
        return clauses, True
    return clauses, False


class _Compiler:
    def __init__(self, dialect: str, stored: Callable[[str], str]) -> None:
        self.dialect, self.stored = dialect, stored
        self.params: dict[str, Any] = {}
        self.counter = itertools.count()
        self.exact = True

    def bind(self, value: Any) -> str:
        name = f"q{next(self.counter)}"
        self.params[name] = value
        return f":{name}"

    # --- one value (a member of the attribute's value) against one wanted value ---------------------------

    def _pred(self, x: str, kind: str, op: str, wanted: Any) -> str | None:
        sql_op = _SQL_OP[op]
        if isinstance(wanted, bool):
            if op not in ("==", "!="):
                return None
            if self.dialect == "sqlite":
                return f"{kind} = '{'true' if wanted else 'false'}'"
            return f"(CASE WHEN jsonb_typeof({x}) = 'boolean' THEN ({x})::boolean = {self.bind(wanted)} ELSE false END)"
        if isinstance(wanted, int | float):
            if self.dialect == "sqlite":
                return f"({kind} IN ('integer', 'real') AND {x} {sql_op} {self.bind(wanted)})"
            return (
                f"(CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x})::numeric {sql_op} "
                f"CAST({self.bind(wanted)} AS numeric) ELSE false END)"
            )
        if isinstance(wanted, str):
            if self.dialect == "sqlite":  # BINARY collation: code point order, as Python compares
                return f"({kind} = 'text' AND {x} {sql_op} {self.bind(wanted)})"
            return (
                f"(CASE WHEN jsonb_typeof({x}) = 'string' THEN ({x} #>> '{{}}') COLLATE \"C\" {sql_op} "
                f"{self.bind(wanted)} ELSE false END)"
            )
        return None  # a date-time: compared as a time in Python only

    def _equal(self, x: str, kind: str, wanted: Any) -> str | None:
        """The member is comparable with and equal to (inside, one of) `wanted`."""
        if isinstance(wanted, tuple):
            low, high = self._pred(x, kind, ">=", wanted[0]), self._pred(x, kind, "<=", wanted[1])
            return None if low is None or high is None else f"({low} AND {high})"
        if isinstance(wanted, list):
            parts = [self._pred(x, kind, "==", w) for w in wanted]
            return None if any(p is None for p in parts) else "(" + " OR ".join(parts) + ")"
        return self._pred(x, kind, "==", wanted)

    # --- the attribute's members -------------------------------------------------------------------------

    def _members(self, name: str, pred: Callable[[str, str], str | None], on_object: bool) -> str | None:
        """Some member of the attribute's value (its value, else its object; a list's items) satisfies pred;
        `on_object`: what an object value (one member that compares with nothing) gives."""
        obj = "1" if on_object else "0"
        if self.dialect == "sqlite":
            value, target = self.bind(f'$."{name}".value'), self.bind(f'$."{name}".object')
            path = f"(CASE WHEN json_type({TABLE}.attrs, {value}) IS NULL THEN {target} ELSE {value} END)"
            inner = pred("m.value", "m.type")
            if inner is None:
                return None
            return (
                f"COALESCE(CASE json_type({TABLE}.attrs, {path}) WHEN 'object' THEN {obj} WHEN 'null' THEN 0 "
                f"ELSE EXISTS (SELECT 1 FROM json_each({TABLE}.attrs, {path}) AS m WHERE {inner}) END, 0)"
            )
        key = self.bind(name)
        attr = f"CAST({TABLE}.attrs AS jsonb) -> {key}"
        v = f"COALESCE({attr} -> 'value', {attr} -> 'object')"
        item, whole = pred("m.x", ""), pred(v, "")
        if item is None or whole is None:
            return None
        on = "true" if on_object else "false"
        return (
            f"COALESCE(CASE jsonb_typeof({v}) WHEN 'object' THEN {on} WHEN 'null' THEN false "
            f"WHEN 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements({v}) AS m(x) WHERE {item}) "
            f"WHEN 'number' THEN {whole} WHEN 'string' THEN {whole} WHEN 'boolean' THEN {whole} END, false)"
        )

    def term(self, t: Term) -> str | None:
        if "." in t.path or "[" in t.path or t.path in ("id", "type"):
            return None
        name = self.stored(t.path)
        sqlite = self.dialect == "sqlite"

        def anything(x: str, kind: str) -> str:
            return "1" if sqlite else "true"

        if t.op is None:
            return self._members(name, anything, True)
        if t.op == "!":
            there = self._members(name, anything, True)
            return None if there is None else f"NOT {there}"
        if t.op in ("~=", "!~="):
            if not sqlite:
                return None
            pattern = self.bind(t.wanted.pattern)
            hit = "1" if t.op == "~=" else "0"
            return self._members(name, lambda x, k: f"({k} = 'text' AND ngsi_search({pattern}, {x}) = {hit})", False)
        if t.op == "!=":
            there = self._members(name, anything, True)
            equal = self._members(name, lambda x, k: self._equal(x, k, t.wanted), False)
            return None if there is None or equal is None else f"({there} AND NOT {equal})"
        if t.op == "==":
            return self._members(name, lambda x, k: self._equal(x, k, t.wanted), False)
        return self._members(name, lambda x, k: self._pred(x, k, t.op, t.wanted), False)

    def node(self, n: Node) -> str | None:
        if isinstance(n, Term):
            sql = self.term(n)
            if sql is None:
                self.exact = False
            return sql
        parts = [self.node(p) for p in n.parts]
        if isinstance(n, AllOf):
            kept = [p for p in parts if p is not None]
            return "(" + " AND ".join(kept) + ")" if kept else None
        assert isinstance(n, AnyOf)
        if any(p is None for p in parts):
            self.exact = False
            return None
        return "(" + " OR ".join(parts) + ")"  # type: ignore[arg-type]


def q_filter(dialect: str, q: Node, stored: Callable[[str], str]) -> tuple[ColumnElement | None, bool]:
    """SQL for q: (the clause or None, exact). `stored`: a request's attribute name → the stored one."""
    compiler = _Compiler(dialect, stored)
    sql = compiler.node(q)
    if sql is None:
        return None, False
    return text(sql).bindparams(**compiler.params), compiler.exact
