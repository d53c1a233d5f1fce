"""Full-text search over the open data catalogue (datasets) and the published documents, in Korean and English.

Text is pre-tokenized (core.words), the same way for what is indexed and what is asked, so both stores search
the same tokens: Korean by morphemes (kiwipiepy: 교통정보를 → 교통, 정보), so a two-syllable word matches inside
a compound and a particle never stops a match; a noun of three or more syllables the analyser keeps whole
(서울특별시) is also indexed by its first and last two syllables; English words lower-cased with a light
plural folding. The stores then do the matching and ranking:

    SQLite      an FTS5 table over `opendata_search` (triggers keep it), ranked by bm25, titles weighted 10:1
    PostgreSQL  a stored setweight(to_tsvector('simple', title), 'A') || …(body, 'B') with a GIN index, ts_rank

Every query token must match (AND). A search is one statement returning every match ranked (the count, the page
and the facets come from it); facets are counted in memory from each entry's facet values, remembered per
process and store by the entry's updated_at and read again when it has moved. The interface the catalogue calls:

    index_text(session, kind, ref_id, title=…, body=…, facets={field: values})   add or replace an entry
    remove(session, kind, ref_id)                                                 drop it
    search(session, q, kinds, filters=…, facet_fields=…, limit, offset) -> Found  ranked (kind, ref_id)s,
                                                                                  the true total, facets
    matches(session, q, kinds, filters=…) -> [Hit]                               every match, ranked
All take the caller's session: an entry changes in the same transaction as the thing it describes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import bindparam, delete, insert, select, text
from sqlalchemy.orm import Session

from smartcity.core.db import utcnow
from smartcity.core.words import tokens
from smartcity.opendata.models import SEARCH_VECTOR, SearchEntry, SearchFacet

TITLE_WEIGHT = 10.0  # bm25's weight of the title column against the body's 1.0 (SQLite)
MAX_LIMIT = 1000


def _joined(values: str | Iterable[str]) -> str:
    parts = [values] if isinstance(values, str) else list(values)
    return " ".join(t for part in parts if part for t in tokens(part))


def index_text(
    session: Session,
    kind: str,
    ref_id: int,
    *,
    title: str | Iterable[str] = (),
    body: str | Iterable[str] = (),
    facets: Mapping[str, Iterable[str]] | None = None,
) -> SearchEntry:
    """Add or replace the entry of `kind` `ref_id`: its titles and bodies (every language's), its facets."""
    entry = session.scalar(select(SearchEntry).where(SearchEntry.kind == kind, SearchEntry.ref_id == ref_id))
    if entry is None:
        entry = SearchEntry(kind=kind, ref_id=ref_id)
        session.add(entry)
    entry.title_tokens = _joined(title)
    entry.body_tokens = _joined(body)
    entry.updated_at = utcnow()
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"UPDATE opendata_search SET vector = {SEARCH_VECTOR} WHERE id = :id"), {"id": entry.id})
    _drop_facets(session, entry.id)
    rows = {(name, str(v)[:200]) for name, values in (facets or {}).items() for v in values if str(v)}
    if rows:
        # Rows, not objects: a session indexing thousands of entries keeps no facet objects to look through.
        session.execute(
            insert(SearchFacet), [{"entry_id": entry.id, "field": name, "value": v} for name, v in sorted(rows)]
        )
    return entry


def _drop_facets(session: Session, entry_id: int) -> None:
    # Not synchronised with the session: facets are never loaded as objects, and looking for them among the
    # session's objects made indexing n entries in one transaction O(n²).
    session.execute(
        delete(SearchFacet).where(SearchFacet.entry_id == entry_id).execution_options(synchronize_session=False)
    )


def remove(session: Session, kind: str, ref_id: int) -> bool:
    """Drop the entry of `kind` `ref_id` (and its facets); whether there was one."""
    entry = session.scalar(select(SearchEntry).where(SearchEntry.kind == kind, SearchEntry.ref_id == ref_id))
    if entry is None:
        return False
    _drop_facets(session, entry.id)
    session.delete(entry)
    session.flush()
    return True


@dataclass(frozen=True)
class Hit:
    kind: str
    ref_id: int
    score: float


@dataclass(frozen=True)
class Found:
    """A page of matches, best first; `total` counts every match; facets: field → [(value, count)], most first."""

    hits: list[Hit]
    total: int
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def ids(self, kind: str | None = None) -> list[int]:
        return [h.ref_id for h in self.hits if kind is None or h.kind == kind]


def _fts5_query(words: Sequence[str]) -> str:
    return " AND ".join('"' + w.replace('"', '""') + '"' for w in dict.fromkeys(words))


def _matches(
    session: Session, q: str, kinds: Sequence[str] | None, filters: Mapping[str, Iterable[str]] | None
) -> Sequence[Any]:
    """Every entry matching `q`, `kinds` and `filters`, best first (newest first without words), as rows of
    (entry id, kind, ref_id, stamp, score) — the stamp is the entry's updated_at as the store hands it back,
    what its facets are remembered by. One statement: the count, the page and the facets come from the same
    matches."""
    words = tokens(q or "")
    postgres = session.get_bind().dialect.name == "postgresql"
    params: dict[str, Any] = {}
    where: list[str] = []
    if words and postgres:
        source = "opendata_search s"
        score = "ts_rank(s.vector, plainto_tsquery('simple'::regconfig, :q), 1)"
        where.append("s.vector @@ plainto_tsquery('simple'::regconfig, :q)")
        order = "score DESC, s.id"
        params["q"] = " ".join(dict.fromkeys(words))
    elif words:
        # CROSS JOIN keeps the full-text match as the outer loop: with a plain JOIN and a kind filter SQLite may
        # walk the entries by kind and run the MATCH once per entry (160 ms instead of 3 at 2,000 entries).
        source = "opendata_search_fts f CROSS JOIN opendata_search s ON s.id = f.rowid"
        score = f"-bm25(opendata_search_fts, {TITLE_WEIGHT}, 1.0)"
        where.append("opendata_search_fts MATCH :q")
        order = "score DESC, s.id"
        params["q"] = _fts5_query(words)
    else:
        source = "opendata_search s"
        score = "0.0"
        order = "s.updated_at DESC, s.id DESC"
    binds = []
    if kinds is not None:
        where.append("s.kind IN :kinds")
        params["kinds"] = list(kinds) or [""]
        binds.append(bindparam("kinds", expanding=True))
    for i, (name, values) in enumerate((filters or {}).items()):
        where.append(f"s.id IN (SELECT entry_id FROM opendata_search_facets WHERE field = :ff{i} AND value IN :fv{i})")
        params[f"ff{i}"] = name
        params[f"fv{i}"] = [str(v) for v in values] or [""]
        binds.append(bindparam(f"fv{i}", expanding=True))
    sql = (
        f"SELECT s.id, s.kind, s.ref_id, s.updated_at, {score} AS score FROM {source} "
        f"WHERE {' AND '.join(where) or '1 = 1'} ORDER BY {order}"
    )
    return session.execute(text(sql).bindparams(*binds), params).all()


# Each store's entries' facets as last read, by entry id: (the entry's stamp then, its facet values, each as one
# string "field<US>value": a string keeps its hash, so counting them is a dict increment apiece).
# Facets change only with their entry's updated_at (index_text sets both in one transaction), so a remembered
# entry whose stamp is still the one the search just read is current; any other is read again. Counting a
# search's facets is then a pass over memory instead of a statement per field over the facets table (a
# search matching a thousand datasets spent 15 ms there). Across processes nothing needs telling: each
# process compares stamps with what the store says now.
_facet_memo: WeakKeyDictionary[Any, dict[int, tuple[Any, tuple[str, ...]]]] = WeakKeyDictionary()
_US = "\x1f"  # between a facet's field and its value; fields are the code's names, so the first one splits
_memo_lock = threading.Lock()
MEMO_MAX = 200_000  # entries remembered per store; beyond, the memo starts again


def _memo(session: Session) -> dict[int, tuple[Any, tuple[str, ...]]]:
    bind = session.get_bind()
    engine = getattr(bind, "engine", bind)
    with _memo_lock:
        found = _facet_memo.get(engine)
        if found is None or len(found) > MEMO_MAX:
            found = _facet_memo[engine] = {}
        return found


def _remember(session: Session, memo: dict, ids: list[int]) -> None:
    """Read the facets of entries `ids` with their stamps in one statement (a snapshot: the stamp kept is the
    one the facets belong to, whatever is committed meanwhile)."""
    for at in range(0, len(ids), 1000):
        part = ids[at : at + 1000]
        found: dict[int, tuple[Any, list[str]]] = {}
        rows = session.execute(
            text(
                "SELECT s.id, s.updated_at, f.field, f.value FROM opendata_search s "
                "LEFT JOIN opendata_search_facets f ON f.entry_id = s.id WHERE s.id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": part},
        )
        for entry_id, stamp, name, value in rows:
            values = found.setdefault(entry_id, (stamp, []))[1]
            if name is not None:
                values.append(f"{name}{_US}{value}")
        memo.update({i: (stamp, tuple(values)) for i, (stamp, values) in found.items()})


def _facets(
    session: Session, matched: Sequence[Any], fields: Sequence[str], limit: int, mincount: int
) -> dict[str, list[tuple[str, int]]]:
    """field → [(value, count)] over `matched`, most first (then by value), at least `mincount`, `limit` of them."""
    if not fields:
        return {}
    memo = _memo(session)
    unknown: tuple[Any, tuple[str, ...]] = (None, ())
    known = [memo.get(row[0], unknown) for row in matched]
    stale = [row[0] for row, (stamp, _) in zip(matched, known, strict=True) if stamp != row[3]]
    if stale:
        _remember(session, memo, stale)
        known = [memo.get(row[0], unknown) for row in matched]
    counted = Counter(chain.from_iterable(map(itemgetter(1), known)))
    wanted: dict[str, list[tuple[str, int]]] = {name: [] for name in fields}
    for pair, n in counted.items():
        name, _, value = pair.partition(_US)
        if name in wanted and n >= mincount:
            wanted[name].append((value, n))
    return {name: sorted(values, key=lambda v: (-v[1], v[0]))[: max(0, limit)] for name, values in wanted.items()}


def matches(
    session: Session, q: str, kinds: Sequence[str] | None = None, *, filters: Mapping[str, Iterable[str]] | None = None
) -> list[Hit]:
    """Every entry matching, best first (see `search`): for a caller that orders them by something else."""
    return [Hit(kind, int(ref_id), float(score)) for _, kind, ref_id, _, score in _matches(session, q, kinds, filters)]


def search(
    session: Session,
    q: str,
    kinds: Sequence[str] | None = None,
    *,
    filters: Mapping[str, Iterable[str]] | None = None,
    facet_fields: Sequence[str] = (),
    facet_limit: int = 50,
    facet_mincount: int = 1,
    limit: int = 10,
    offset: int = 0,
) -> Found:
    """The entries matching every token of `q` (all entries when `q` has none, newest first), best first.

    kinds    only entries of these kinds; filters: field → values, an entry must have one of the values of
             each field; facet_fields: count the matches' values of these fields."""
    limit = max(0, min(int(limit), MAX_LIMIT))
    offset = max(0, int(offset))
    matched = _matches(session, q, kinds, filters)
    page = [Hit(kind, int(ref_id), float(score)) for _, kind, ref_id, _, score in matched[offset : offset + limit]]
    facets = _facets(session, matched, facet_fields, facet_limit, max(1, facet_mincount))
    return Found(page, len(matched), facets)
