"""Information Communication Plaza: administrative documents published after their personal data is masked.

A data publisher uploads a document (text, PDF, DOCX, HWPX, HWP); its text is extracted and the platform proposes masks
(opendata/masking.py). In the review screen the publisher accepts or undoes each, and adds their own (a
string typed or a stretch selected). Publishing needs every mask decided; it keeps only the masked text —
the extracted original and each mask's original are emptied — and indexes it for search. The public sees
published documents only. Every upload, read of an original, decision and publication is audited (never
with the personal data itself), and so is every refusal to show an original.

HWPX (the open OWPML format) is read with the standard library, HWP 5 with olefile (opendata/hwp.py).
Shortcuts, named: the published file is the masked text (a .txt rendering), not a masked copy of the PDF or DOCX.

This module is the surface the pages use: uploading and publishing, and the public's reading; it re-exports
document_files.py (reading a file's text) and document_review.py (masks and decisions, the review screen).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.db import utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound
from smartcity.core.i18n import N_
from smartcity.opendata import masking, search
from smartcity.opendata.catalogue import new_uid
from smartcity.opendata.document_files import MAX_BYTES, MAX_UNPACKED, extract_text, language_of_text
from smartcity.opendata.document_review import (
    DECISIONS,
    MaskView,
    Review,
    Segment,
    accept_all,
    add_mask,
    decide,
    finding_of,
    guarded,
    in_review,
    mask_row,
    masks_of,
    review,
)
from smartcity.opendata.models import Document, Organisation

__all__ = [
    "DECISIONS",
    "KIND",
    "MAX_BYTES",
    "MAX_NAMES",
    "MAX_UNPACKED",
    "DocumentList",
    "MaskView",
    "PublicDocument",
    "Review",
    "Segment",
    "Upload",
    "accept_all",
    "add_mask",
    "decide",
    "extract_text",
    "guarded",
    "language_of_text",
    "mine",
    "public_document",
    "publish",
    "published",
    "review",
    "upload",
]

MAX_NAMES = 200
KIND = "document"  # the search entries' kind


# --- read models ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicDocument:
    uid: str
    title: str
    organisation: str | None
    language: str
    file_type: str
    published_at: datetime | None
    text: str


@dataclass(frozen=True)
class DocumentList:
    documents: list[PublicDocument]
    total: int
    q: str = ""
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


# --- the service -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    title: str
    names: Sequence[str] = ()
    organisation: str | None = None
    language: str | None = None  # None: Korean when a tenth of its letters are Hangul, else English


def _names(raw: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in raw if n and n.strip()))
    if len(names) > MAX_NAMES:
        raise InvalidInput(N_("at most {count} names can be listed"), params={"count": MAX_NAMES})
    short = [n for n in names if len(n) < 2]
    if short:
        raise InvalidInput(N_("a listed name has at least two letters: {name}"), params={"name": short[0]})
    return names


def upload(session: Session, who: Identity, item: Upload) -> Document:
    """A new document in review, with the masks the platform proposes."""
    title = item.title.strip()
    if not title:
        raise InvalidInput(N_("a document needs a title"), code="title")
    names = _names(item.names)
    if masking.find(title, names):
        raise InvalidInput(N_("the title holds personal data: give the document a title without it"), code="title")
    organisation_id = None
    if item.organisation:
        organisation_id = session.scalar(select(Organisation.id).where(Organisation.name == item.organisation))
        if organisation_id is None:
            raise InvalidInput(N_("no organisation {name}"), params={"name": item.organisation})
    file_type, text = extract_text(item.filename, item.data)
    document = Document(
        uid=new_uid(),
        title=title[:300],
        organisation_id=organisation_id,
        file_name=item.filename[:300],
        file_type=file_type,
        language=item.language or language_of_text(text),
        status="review",
        text=text,
        masked_text="",
        names=names,
        uploaded_by=who.user_id,
    )
    session.add(document)
    session.flush()
    found = masking.find(text, names)
    session.add_all(mask_row(document, f, "found", "proposed") for f in found)
    audit.record(
        session,
        who,
        "upload",
        "document",
        document.uid,
        {"file_type": file_type, "characters": len(text), "proposed": dict(Counter(f.kind for f in found))},
    )
    session.flush()
    return document


def publish(session: Session, who: Identity, uid: str) -> Document:
    """Publish the masked text: every mask must be decided; the original and the masks' originals are gone."""
    document = in_review(session, who, uid, "publish")
    masks = masks_of(session, document)
    pending = [m for m in masks if m.state == "proposed"]
    if pending:
        raise Conflict(
            N_("{count} proposed masks are not decided yet: accept or undo each before publishing"),
            code="undecided",
            params={"count": len(pending)},
        )
    accepted = [m for m in masks if m.state == "accepted"]
    document.masked_text = masking.apply_all(document.text, [finding_of(m) for m in accepted])
    document.text = ""
    for m in masks:
        m.original = ""
    document.status = "published"
    document.published_by = who.user_id
    document.published_at = utcnow()
    organisation = session.get(Organisation, document.organisation_id) if document.organisation_id else None
    search.index_text(
        session,
        KIND,
        document.id,
        title=document.title,
        body=document.masked_text,
        facets={
            "organisation": [organisation.name] if organisation else [],
            "file_type": [document.file_type],
            "language": [document.language],
        },
    )
    audit.record(
        session,
        who,
        "publish",
        "document",
        document.uid,
        {
            "masked": dict(Counter(m.kind for m in accepted)),
            "undone": dict(Counter(m.kind for m in masks if m.state == "undone")),
        },
    )
    session.flush()
    return document


def mine(session: Session, who: Identity) -> list[Document]:
    """The documents `who` uploaded (every one for a catalogue manager), newest first."""
    query = select(Document).order_by(Document.created_at.desc(), Document.id.desc())
    if not who.can("opendata.manage"):
        query = query.where(Document.uploaded_by == who.user_id)
    return list(session.scalars(query.limit(500)))


def _public(document: Document, organisation: str | None) -> PublicDocument:
    return PublicDocument(
        document.uid,
        document.title,
        organisation,
        document.language,
        document.file_type,
        document.published_at,
        document.masked_text,
    )


def published(
    session: Session, q: str = "", limit: int = 20, offset: int = 0, organisation: str | None = None
) -> DocumentList:
    """Published documents: matching `q` best first, else newest first; facets by organisation and file type."""
    filters = {"organisation": [organisation]} if organisation else None
    found = search.search(
        session, q, [KIND], filters=filters, facet_fields=("organisation", "file_type"), limit=limit, offset=offset
    )
    ids = found.ids(KIND)
    rows = {
        d.id: (d, o)
        for d, o in session.execute(
            select(Document, Organisation.name)
            .outerjoin(Organisation, Organisation.id == Document.organisation_id)
            .where(Document.id.in_(ids), Document.status == "published")
        )
    }
    return DocumentList([_public(*rows[i]) for i in ids if i in rows], found.total, q, found.facets)


def public_document(session: Session, uid: str) -> PublicDocument:
    """A published document; one in review is not found (it is not public)."""
    row = session.execute(
        select(Document, Organisation.name)
        .outerjoin(Organisation, Organisation.id == Document.organisation_id)
        .where(Document.uid == uid, Document.status == "published")
    ).first()
    if row is None:
        raise NotFound(N_("no document {uid}"), params={"uid": uid})
    return _public(*row)
