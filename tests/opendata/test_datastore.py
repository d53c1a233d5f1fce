"""datastore_search's reading of a resource's rows, on both stores: values as JSON has them, the statements it
runs compiled once per table and reused, a new version's columns read at once."""

from __future__ import annotations

from sqlalchemy import event

from smartcity.opendata import datastore
from tests.opendata.helpers import publish

TYPED = (
    "code,opened,checked_at,open,rate,note\n"
    "1,2024-03-01,2024-03-01 09:30,true,1.5,첫째\n"
    "2,2024-03-02,2024-03-02 18:05:07,false,,\n"
    "3,,,,-2.25,셋째\n"
)


def _compiled(db, run) -> list[object]:
    """The compiled statements `run` executed, in order (SQLAlchemy hands a cached one back as it is)."""
    seen: list[object] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(context.compiled)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return seen


def test_values_come_back_as_json_has_them(db):
    done = publish(db, "typed-values", TYPED.encode(), "typed.csv")
    with db.session() as s:
        found = datastore.search(s, done.resource_id, sort="code")
        lists = datastore.search(s, done.resource_id, sort="code", records_format="lists", fields=["opened", "open"])
    assert {f["id"]: f["type"] for f in found["fields"]} == {
        "_id": "int",
        "code": "int",
        "opened": "date",
        "checked_at": "timestamp",
        "open": "bool",
        "rate": "numeric",
        "note": "text",
    }
    assert found["records"] == [
        {"_id": 1, "code": 1, "opened": "2024-03-01", "checked_at": "2024-03-01T09:30:00", "open": True,
         "rate": 1.5, "note": "첫째"},
        {"_id": 2, "code": 2, "opened": "2024-03-02", "checked_at": "2024-03-02T18:05:07", "open": False,
         "rate": None, "note": None},
        {"_id": 3, "code": 3, "opened": None, "checked_at": None, "open": None, "rate": -2.25, "note": "셋째"},
    ]  # fmt: skip
    assert lists["records"] == [["2024-03-01", True], ["2024-03-02", False], [None, None]]
    with db.session() as s:
        on_a_date = datastore.search(s, done.resource_id, filters={"opened": "2024-03-02", "open": "false"})
    assert [r["code"] for r in on_a_date["records"]] == [2] and on_a_date["total"] == 1


def test_repeated_searches_reuse_their_compiled_statements(db):
    """Regression (speed): the resource's Table was made anew for every request, so SQLAlchemy compiled each
    statement again (a quarter of datastore_search's time). Searches differing only in their values now run
    the statements compiled for the first."""
    rows = "\n".join(f"{n},{'강남구' if n % 2 else '서초구'},{'도로' if n % 3 else '조명'}" for n in range(1, 50))
    done = publish(db, "compiled-once", f"id,district,kind\n{rows}\n".encode(), "c.csv")

    def search(district: str, kind: str) -> dict:
        with db.session() as s:
            return datastore.search(
                s, done.resource_id, filters={"district": district, "kind": kind}, sort="id desc", limit=5
            )

    first = _compiled(db, lambda: search("강남구", "도로"))
    again = _compiled(db, lambda: search("서초구", "조명"))
    assert len(first) == len(again) == 3  # the resource, the page, the filtered total
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert search("서초구", "조명")["records"][0]["id"] == 48


def test_a_new_version_with_other_columns_is_read_with_them(db):
    """The kept Table belongs to the table's name and columns: a version whose columns differ is read with its
    own (a Table kept by name alone would miss the new column and read `n` as a number)."""
    first = publish(db, "changing-columns", b"name,n\nA,1\nB,2\n", "changing.csv")
    with db.session() as s:
        assert datastore.search(s, first.resource_id)["records"][0] == {"_id": 1, "name": "A", "n": 1}
    second = publish(db, "changing-columns", b"name,n,extra\nA,x1,yes\nB,2,no\n", "changing.csv")
    assert second.resource_id == first.resource_id and second.version == 2
    with db.session() as s:
        found = datastore.search(s, first.resource_id)
    assert found["records"] == [
        {"_id": 1, "name": "A", "n": "x1", "extra": True},
        {"_id": 2, "name": "B", "n": "2", "extra": False},
    ]
    assert {f["id"]: f["type"] for f in found["fields"]}["n"] == "text"


def test_a_filtered_total_is_counted_once_per_version(db):
    """Regression (speed): the filtered total was counted for every page (a count over the matching rows of a
    million-row table, each request). It is now counted once per resource version and filter values, and a new
    version is counted anew."""
    rows = "\n".join(f"{n},{'강남구' if n % 2 else '서초구'}" for n in range(1, 21))
    done = publish(db, "counted-once", f"id,district\n{rows}\n".encode(), "c.csv")

    def total(district: str) -> int:
        with db.session() as s:
            return datastore.search(s, done.resource_id, filters={"district": district}, limit=1)["total"]

    assert len(_compiled(db, lambda: total("강남구"))) == 3  # the resource, the page, the filtered total
    again = _compiled(db, lambda: total("강남구"))
    assert len(again) == 2  # the count is not run again
    assert total("강남구") == 10 and total("서초구") == 10
    more = "\n".join(f"{n},강남구" for n in range(1, 31))
    second = publish(db, "counted-once", f"id,district\n{more}\n".encode(), "c.csv")
    assert second.resource_id == done.resource_id and second.version == 2
    assert total("강남구") == 30 and total("서초구") == 0
