"""Storage: engine and sessions for SQLite (WAL) or PostgreSQL, the declarative base, migrations."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from smartcity.core.context import AppContext

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- the time codec: one way to keep a UTC time in either store ---------------------------------------
#
# PostgreSQL keeps timestamptz; SQLite has no time type, so a time is kept as naive UTC text, written as
# SQLAlchemy's SQLite dialect writes it ("2024-05-01 00:30:00.000000": microseconds always). Hand-written SQL
# (the intake's batch inserts, the Open311 fast path) binds and reads times through these functions, so its
# rows compare and sort with the ORM's.


def as_utc(value: datetime) -> datetime:
    """An aware time in UTC; a naive one is refused (a time without a zone is a bug, not UTC)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def sqlite_text(value: datetime | None) -> str | None:
    """A time as SQLite keeps it (naive UTC text with microseconds)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:  # the intake's times are UTC already: it calls this for every position
        value = as_utc(value)
    return value.isoformat(" ", "microseconds")[:26]


def to_store(value: datetime | None, sqlite: bool) -> datetime | str | None:
    """A time as a bound value of hand-written SQL: text for SQLite, an aware UTC datetime for PostgreSQL."""
    if value is None:
        return None
    return sqlite_text(value) if sqlite else as_utc(value)


def from_store(value: datetime | str | None) -> datetime | None:
    """A time read from either store (SQLite's text or naive value, PostgreSQL's aware one), aware in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always handed back timezone-aware (the ORM's side of the codec)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            value = as_utc(value)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return from_store(value)


# --- epoch milliseconds: the hot tables' times ------------------------------------------------------
#
# High-rate tables (positions, device states) keep a time as BIGINT milliseconds since 1970 UTC: an integer
# compares, sorts and keys cheaply on both stores, and the intake's columnar batches carry times as int64 ms
# without making a datetime per row. The ORM still sees aware datetimes.

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_millis(value: datetime) -> int:
    """An aware time as integer milliseconds since the epoch (sub-millisecond parts are dropped, rounding
    down, so a time and its stored value sort the same way)."""
    return (as_utc(value) - EPOCH) // _MS


def from_millis(value: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return EPOCH + timedelta(milliseconds=int(value))


class EpochMillis(TypeDecorator):
    """A time stored as BIGINT epoch milliseconds, handed to and from Python as an aware datetime. An int
    bound to it is taken as milliseconds already (the intake's batches bind their columns as they are)."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or isinstance(value, int):
            return value
        return to_millis(value)

    def process_result_value(self, value, dialect):
        return None if value is None else from_millis(value)


class Tally:
    """Counts of what this process did with a store (job runs, failed deliveries), by kind and label, for
    /metrics. Thread-safe: the scheduler, the writer and requests count from their own threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}

    def add(self, kind: str, label: str, n: int = 1) -> None:
        with self._lock:
            by_label = self._counts.setdefault(kind, {})
            by_label[label] = by_label.get(label, 0) + n

    def counts(self, kind: str) -> dict[str, int]:
        with self._lock:
            return dict(self._counts.get(kind, {}))


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if kwargs.pop("nullpool", False):
        kwargs["poolclass"] = NullPool
    return create_engine(url, **kwargs)


class Database:
    """One store: its engine and a session factory. The app keeps one; tests make their own."""

    def __init__(self, url: str, **engine_kwargs):
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, info={"db": self})
        self.context: AppContext | None = None  # settings, city profile, modules: core.context.context_of()
        self.tally = Tally()  # what this process did with the store, for /metrics
        from smartcity.core.events import EventBus

        self.events = EventBus(self)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends cleanly and rolls back on any error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Each module keeps its migrations beside its code, as an Alembic branch off the core.
    locations = [str(MIGRATIONS / "versions")]
    package = Path(__file__).parent.parent
    for module_dir in sorted(package.iterdir()):
        versions = module_dir / "migrations"
        if module_dir.name != "core" and versions.is_dir():
            locations.append(str(versions))
    cfg.set_main_option("version_locations", " ".join(locations))
    cfg.set_main_option("path_separator", "space")
    cfg.attributes["url"] = url
    return cfg


def migrate(url: str) -> None:
    """Bring the schema of the store at `url` up to date (every module's branch)."""
    command.upgrade(alembic_config(url), "heads")
