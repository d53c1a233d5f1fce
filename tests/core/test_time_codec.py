"""The one time codec: what hand-written SQL binds and reads matches what the ORM stores, on both stores."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from smartcity.core import db as codec
from smartcity.core.notify import queue

KST = timezone(timedelta(hours=9))


def test_hand_written_sql_finds_and_reads_what_the_orm_stored(db):
    at = datetime(2024, 5, 1, 9, 30, 0, 123, tzinfo=KST)
    with db.session() as s:
        row = queue(s, "log", "someone", "a message")
        row.created_at = at
        s.flush()
        row_id = row.id
    sqlite = not db.is_postgres
    with db.engine.connect() as conn:
        found = conn.execute(
            text("SELECT id, created_at FROM notifications WHERE created_at = :at"), {"at": codec.to_store(at, sqlite)}
        ).all()
        later = conn.execute(
            text("SELECT count(*) FROM notifications WHERE created_at > :at"),
            {"at": codec.to_store(at + timedelta(microseconds=1), sqlite)},
        ).scalar()
    assert [r.id for r in found] == [row_id] and later == 0
    assert codec.from_store(found[0].created_at) == at
    if sqlite:
        assert found[0].created_at == codec.sqlite_text(at) == "2024-05-01 00:30:00.000123"


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from([UTC, KST, timezone(timedelta(hours=-3, minutes=-30))]),
    )
)
def test_the_sqlite_text_reads_back_and_sorts_as_the_times_do(when):
    stored = codec.sqlite_text(when)
    assert codec.from_store(stored) == when
    later = codec.sqlite_text(when + timedelta(microseconds=1))
    assert stored < later  # text order is time order: comparisons in SQL stay right


def test_a_time_without_a_zone_is_refused_and_none_passes():
    with pytest.raises(ValueError):
        codec.to_store(datetime(2024, 5, 1), sqlite=True)
    assert codec.to_store(None, sqlite=False) is None and codec.from_store(None) is None
    assert codec.from_store(datetime(2024, 5, 1)) == datetime(2024, 5, 1, tzinfo=UTC)
