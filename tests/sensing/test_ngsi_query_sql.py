"""The entity query's filters answered by the store (ngsi_sql): idPattern and q read in SQL select exactly what
the q language's Python test selects, on both stores, and the page and the count stay exact."""

from __future__ import annotations

import json
import random
import re

import pytest
from sqlalchemy import event

from smartcity.sensing import ngsi_entities as store
from smartcity.sensing import ngsi_sql
from smartcity.sensing.ngsi_query import parse_q

VALUES = [0, 3, 3.5, 7, -2, "3", "abc", "abd", "Ab", "가나", True, False, [1, 7], ["abc", 9], [], {"k": 3}]


def things() -> list[store.Entity]:
    """Entities whose attributes `a` and `b` take every kind of value (numbers, text, booleans, lists, an
    object), sometimes as a Relationship's object, sometimes absent."""
    made = []
    for n in range(len(VALUES) * 2):
        attrs: dict = {}
        a = VALUES[n % len(VALUES)]
        attrs["a"] = {"type": "Property", "value": a}
        if n % 3:
            attrs["b"] = {"type": "Property", "value": VALUES[(n * 7) % len(VALUES)]}
        if n % 5 == 0:
            attrs["r"] = {"type": "Relationship", "object": f"urn:ngsi-ld:Thing:{n % 4:03d}"}
        made.append(store.Entity(f"urn:ngsi-ld:Thing:{n:03d}", "Thing", attrs))
    made.append(store.Entity("urn:ngsi-ld:Other:x1", "Other", {"a": {"type": "Property", "value": 3}}))
    return made


QUERIES = [
    "a",
    "!b",
    "a==3",
    "a!=3",
    "a>3",
    "a>=3;a<7",
    "a<=0",
    "a==3..7",
    "a!=3..7",
    "a==0,7,-2",
    "a!=0,7",
    'a=="abc"',
    'a>"abc"',
    'a<"b"',
    'a=="3"',
    "a==true",
    "a!=false",
    "a~=^ab",
    "a!~=c$",
    "a>3|b<0",
    "(a==3|b==7);!r",
    "r==urn:ngsi-ld:Thing:001",
    "a>1;b",
    "a.x==1",
    "b>2026-01-01T00:00:00Z|a==7",
]


@pytest.fixture
def stored(db) -> list[store.Entity]:
    made = things()
    with db.session() as s:
        store.upsert(s, made)
    return made


def python_answer(made: list[store.Entity], q: str, id_pattern: str | None = None) -> list[str]:
    test = parse_q(q) if q else None
    return [
        e.id
        for e in sorted(made, key=lambda e: e.id)
        if e.type == "Thing"
        and (test is None or test(e.as_dict()))
        and (id_pattern is None or re.fullmatch(id_pattern, e.id))
    ]


def test_q_in_sql_selects_what_the_python_test_selects(db, stored):
    rng = random.Random(16)
    queries = QUERIES + [f"{rng.choice(QUERIES)};{rng.choice(QUERIES)}" for _ in range(15)]
    for q in queries:
        spec = store.Query(types=["Thing"], q=parse_q(q), limit=1000)
        with db.session() as s:
            found, total = store.query(s, spec)
        want = python_answer(stored, q)
        assert [e.id for e in found] == want, q
        assert total == len(want), q


def test_a_q_the_store_can_read_is_paged_and_counted_in_sql(db, stored):
    """Regression: q was tested in Python on every entity of the type, then paged; now the store returns the
    page alone (LIMIT/OFFSET in the statement, only the page's rows read) with the count."""
    statements: list[str] = []
    rows_read: list[int] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if "sensing_ngsi_entities" in statement:
            statements.append(statement)

    q = 'a>=0;a<100|a=="abc"'
    want = python_answer(stored, q)
    assert len(want) > 6
    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        pages = []
        for offset in range(0, len(want) + 3, 3):
            with db.session() as s:
                found, total = store.query(s, store.Query(types=["Thing"], q=parse_q(q), limit=3, offset=offset))
            rows_read.append(len(found))
            assert total == len(want)
            pages += [e.id for e in found]
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    assert pages == want
    assert all(n <= 3 for n in rows_read)
    page_reads = [st for st in statements if "count(" not in st.lower()]
    assert page_reads and all("LIMIT" in st.upper() for st in page_reads), page_reads


def test_id_pattern_in_sql(db, stored):
    for pattern in (
        r"urn:ngsi-ld:Thing:01\d",
        r"urn:ngsi-ld:Thing:0(0[1-3]|2.)",
        r".*:00[05]",
        r"urn:ngsi-ld:Thing:0?1.*",
    ):
        want = python_answer(stored, "", pattern)
        with db.session() as s:
            found, total = store.query(
                s, store.Query(types=["Thing"], id_pattern=re.compile(pattern), limit=2, offset=1)
            )
        assert [e.id for e in found] == want[1:3] and total == len(want), pattern
    # A pattern PostgreSQL's regex dialect reads otherwise is still answered, in Python.
    lookahead = r"urn:ngsi-ld:Thing:(?!00)\d+"
    with db.session() as s:
        found, total = store.query(s, store.Query(types=["Thing"], id_pattern=re.compile(lookahead), limit=1000))
    assert [e.id for e in found] == python_answer(stored, "", lookahead) and total == len(found)


def test_what_compiles_is_exact_and_what_does_not_is_said(db):
    dialect = db.engine.dialect.name
    assert ngsi_sql.q_filter(dialect, parse_q("a>3;b==1,2"), str)[1] is True
    assert ngsi_sql.q_filter(dialect, parse_q("a.x==1;a>3"), str)[1] is False  # a sub-attribute: Python
    clause, exact = ngsi_sql.q_filter(dialect, parse_q("a.x==1|a>3"), str)
    assert clause is None and exact is False
    assert ngsi_sql.literal_prefix(r"^urn:ngsi-ld:Thing:0?1") == "urn:ngsi-ld:Thing:"
    assert ngsi_sql.literal_prefix(r"a|b") == ""


def test_count_with_q_and_pagination_over_http(client, sender_key, db):
    made = [e.as_dict() for e in things()]
    r = client.post(
        "/ngsi-ld/v1/entityOperations/create",
        content=json.dumps(made),
        headers={"Content-Type": "application/json", "X-API-Key": sender_key},
    )
    assert r.status_code == 201, r.text
    want = python_answer(things(), "a>=3")
    got = []
    for offset in range(0, len(want), 4):
        r = client.get(
            "/ngsi-ld/v1/entities",
            params={"type": "Thing", "q": "a>=3", "limit": "4", "offset": str(offset), "count": "true"},
            headers={"X-API-Key": sender_key},
        )
        assert r.status_code == 200, r.text
        assert r.headers["NGSILD-Results-Count"] == str(len(want))
        got += [e["id"] for e in r.json()]
    assert got == want
