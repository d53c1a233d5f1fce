"""Open Data Plaza tables: organisations, datasets, their resources and every publication (version) of one.

The rows of a resource are not here: each tabular resource gets a typed table of its own, made when it is
first loaded (`od_r_<resource id>`, see opendata/storage.py), in the same store.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from smartcity.core.db import Base, UTCDateTime, utcnow


class Organisation(Base):
    """A publisher of datasets: one of the city's departments (from the city profile), by its code."""

    __tablename__ = "opendata_organisations"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)  # URL slug, CKAN's organization name
    title_ko: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    description_ko: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    department_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Dataset(Base):
    """A dataset of the catalogue (CKAN's package): described in ko and en, holding resources.

    `feed`: the platform dataset (`<module>.<name>`, core.module.datasets) that keeps it current, or None for
    an uploaded one. Only `published` datasets are seen by the public and the APIs."""

    __tablename__ = "opendata_datasets"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title_ko: Mapped[str] = mapped_column(String(300))
    title_en: Mapped[str] = mapped_column(String(300), default="")
    description_ko: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("opendata_organisations.id"), nullable=True)
    licence: Mapped[str] = mapped_column(String(100), default="KOGL-Type1")
    publisher: Mapped[str] = mapped_column(String(200), default="")
    update_frequency: Mapped[str] = mapped_column(String(30), default="irregular")
    spatial: Mapped[str] = mapped_column(String(300), default="")  # a place name or a GeoJSON geometry
    temporal_start: Mapped[str | None] = mapped_column(String(30), nullable=True)  # ISO date
    temporal_end: Mapped[str | None] = mapped_column(String(30), nullable=True)
    theme: Mapped[str] = mapped_column(String(50), default="")
    feed: Mapped[str | None] = mapped_column(String(120), nullable=True, unique=True)
    # A feed's title and descriptions as the platform last wrote them (JSON): a re-registration updates a field
    # still holding those words and leaves one staff changed (opendata_0005).
    feed_wrote: Mapped[str | None] = mapped_column(Text, nullable=True)
    published: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_opendata_datasets_published_modified", "published", "modified_at"),)


class DatasetTag(Base):
    """A tag of a dataset (one row per tag: facets and tag_list count them in SQL)."""

    __tablename__ = "opendata_dataset_tags"
    dataset_id: Mapped[int] = mapped_column(ForeignKey("opendata_datasets.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class Resource(Base):
    """One file or table of a dataset.

    source    "upload" (a file a publisher loaded) or "platform" (rows a module feeds)
    table     the typed table holding its rows (od_r_<id>), None until first loaded
    columns   [{"id", "type", "label"}]: the table's columns in order (id: the column's name in the table and
              the APIs; label: the file's header as written)
    key       the column identifying a row across versions, if declared (else rows are compared by hash)"""

    __tablename__ = "opendata_resources"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("opendata_datasets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    format: Mapped[str] = mapped_column(String(20), default="CSV")
    source: Mapped[str] = mapped_column(String(20), default="upload")
    table: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True)
    columns: Mapped[list] = mapped_column(JSON, default=list)
    key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)  # the number of its current version
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("dataset_id", "name", name="uq_opendata_resources_dataset_name"),)


class Version(Base):
    """One publication of a resource, kept: what changed against the one before and the file as published.

    file      the stored file (relative to the var folder), downloadable later; problems: the first rows that
              did not fit their column's type ({"line", "column", "value", "type"}), problem_count all of them"""

    __tablename__ = "opendata_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("opendata_resources.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    file: Mapped[str | None] = mapped_column(String(300), nullable=True)
    file_name: Mapped[str] = mapped_column(String(300), default="")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    encoding: Mapped[str] = mapped_column(String(20), default="")
    columns: Mapped[list] = mapped_column(JSON, default=list)
    problems: Mapped[list] = mapped_column(JSON, default=list)
    problem_count: Mapped[int] = mapped_column(Integer, default=0)
    published_by: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("resource_id", "number", name="uq_opendata_versions_resource_number"),)


# --- Information Communication Plaza and search (engineer P7: documents.py, search.py) ----------------------


class Document(Base):
    """An administrative document a publisher uploaded: in review until its masks are decided, then published.

    `text` is the extracted original, personal data included: kept only while in review and emptied when the
    document is published, when `masked_text` (the original with the accepted masks applied) is all that
    stays. `names`: the names the publisher listed to be masked."""

    __tablename__ = "opendata_documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("opendata_organisations.id"), nullable=True)
    file_name: Mapped[str] = mapped_column(String(300), default="")
    file_type: Mapped[str] = mapped_column(String(10), default="text")
    language: Mapped[str] = mapped_column(String(10), default="ko")
    status: Mapped[str] = mapped_column(String(20), default="review", index=True)
    text: Mapped[str] = mapped_column(Text, default="")
    masked_text: Mapped[str] = mapped_column(Text, default="")
    names: Mapped[list] = mapped_column(JSON, default=list)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DocumentMask(Base):
    """One mask of a document: found by the platform (`source` "found") or added by the publisher, and its
    decision: proposed, accepted or undone. `original` is emptied when the document is published."""

    __tablename__ = "opendata_document_masks"
    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("opendata_documents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    original: Mapped[str] = mapped_column(Text, default="")
    replacement: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(20), default="found")
    state: Mapped[str] = mapped_column(String(20), default="proposed")
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# The weighted tsvector of a search entry, kept in `vector` on PostgreSQL (search.py writes it with the entry).
SEARCH_VECTOR = (
    "(setweight(to_tsvector('simple'::regconfig, title_tokens), 'A') || "
    "setweight(to_tsvector('simple'::regconfig, body_tokens), 'B'))"
)


class SearchEntry(Base):
    """One searchable thing (a dataset, a document, …) as pre-tokenized text (opendata/search.py).

    The full-text index over it is the store's own: an FTS5 table kept by triggers on SQLite, a GIN index
    over its 'simple' tsvector on PostgreSQL (both made by migration opendata_0002)."""

    __tablename__ = "opendata_search"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    ref_id: Mapped[int] = mapped_column(Integer)
    title_tokens: Mapped[str] = mapped_column(Text, default="")
    body_tokens: Mapped[str] = mapped_column(Text, default="")
    # Stored, not an index expression: ranking reads it instead of re-parsing every match's text per query.
    vector: Mapped[str | None] = mapped_column(Text().with_variant(TSVECTOR(), "postgresql"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("kind", "ref_id", name="uq_opendata_search_kind_ref"),
        # GIN on PostgreSQL; on SQLite (FTS5 instead, the column stays empty) an index of nulls.
        Index("ix_opendata_search_vector", "vector", postgresql_using="gin"),
    )


class SearchFacet(Base):
    """A facet value of a search entry (organisation, tag, format, theme, …), counted over a search's matches."""

    __tablename__ = "opendata_search_facets"
    entry_id: Mapped[int] = mapped_column(ForeignKey("opendata_search.id", ondelete="CASCADE"), primary_key=True)
    field: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)

    __table_args__ = (Index("ix_opendata_search_facets_field_value", "field", "value"),)


# --- Seoul OpenAPI style: services, keys and their daily use (engineer P5: seoul_api.py, keys.py) ------------


class OpenApiService(Base):
    """A service of the Seoul-style OpenAPI (/openapi/{KEY}/{type}/{SERVICE}/…): a published name for one
    resource and the columns its positional filters match, in order. A dataset's own name serves its first
    table without a declaration (and without filters)."""

    __tablename__ = "opendata_openapi_services"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("opendata_resources.id", ondelete="CASCADE"), index=True)
    filters: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OpenApiKey(Base):
    """Who an OpenAPI key (a core `api_keys` row of scope 'opendata', issued without a user so that it opens
    nothing else) belongs to."""

    __tablename__ = "opendata_openapi_keys"
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


class OpenApiUsage(Base):
    """Calls an OpenAPI key made on one day (the city's date), written in batches (opendata/keys.py)."""

    __tablename__ = "opendata_openapi_usage"
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # ISO date
    calls: Mapped[int] = mapped_column(Integer, default=0)


# --- loads of large files, followed from any process (engineer P3: load_progress.py) -----------------------


class Load(Base):
    """A file being loaded into a dataset, from the publisher's page or the CLI, and how far it is: read
    (`size` bytes), typed (`total` rows, `problem_count` defects so far), stored (`stored` rows), then done
    (`result`: the publication's summary) or failed (`error`: a catalogue msgid, `error_params` its values).

    Written by the loading thread in short transactions of its own, so that every serving process sees the
    same progress (opendata/load_progress.py; on SQLite the rows live in a companion file, see there)."""

    __tablename__ = "opendata_loads"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    dataset: Mapped[str] = mapped_column(String(100))
    resource: Mapped[str] = mapped_column(String(200), default="")
    file_name: Mapped[str] = mapped_column(String(300), default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    owner: Mapped[str] = mapped_column(String(80), default="")
    via: Mapped[str] = mapped_column(String(10), default="page")  # page | cli
    state: Mapped[str] = mapped_column(String(20), default="reading")  # reading | storing | done | failed
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stored: Mapped[int] = mapped_column(Integer, default=0)
    problem_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_params: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
