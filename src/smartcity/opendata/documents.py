"""Information Communication Plaza: administrative documents published after their personal data is masked.

A data publisher uploads a document (text, PDF, DOCX, HWPX, HWP); its text is extracted and the platform proposes masks
(opendata/masking.py). In the review screen the publisher accepts or undoes each, and adds their own (a
string typed or a stretch selected). Publishing needs every mask decided; it keeps only the masked text —
the extracted original and each mask's original are emptied — and indexes it for search. The public sees
published documents only. Every upload, read of an original, decision and publication is audited (never
with the personal data itself), and so is every refusal to show an original.

HWPX (the open OWPML format) is read with the standard library, HWP 5 with olefile (opendata/hwp.py).
Shortcuts, named: the published file is the masked text (a .txt rendering), not a masked copy of the PDF or DOCX.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar
from xml.etree import ElementTree

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.db import utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, TooLarge
from smartcity.core.i18n import N_
from smartcity.core.text import decode_korean
from smartcity.opendata import hwp, masking, search
from smartcity.opendata.catalogue import new_uid
from smartcity.opendata.models import Document, DocumentMask, Organisation

MAX_BYTES = 20 * 1024 * 1024
MAX_NAMES = 200
KIND = "document"  # the search entries' kind
DECISIONS = {"accept": "accepted", "undo": "undone"}
_EXTENSIONS = {"txt": "text", "text": "text", "pdf": "pdf", "docx": "docx", "hwp": "hwp", "hwpx": "hwpx"}
MAX_UNPACKED = 200 * 1024 * 1024  # a zipped document (DOCX, HWPX) unpacks to at most this
_HWPX_PARAGRAPH = "{http://www.hancom.co.kr/hwpml/2011/paragraph}"
T = TypeVar("T")
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


# --- reading a file ---------------------------------------------------------------------------------------


def _extension(filename: str) -> str:
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


def _content_type(data: bytes) -> str:
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(_OLE):
        return "hwp"  # an OLE compound file: HWP 5 (or a legacy .doc, which is no more readable here)
    if data.startswith(b"PK\x03\x04"):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except zipfile.BadZipFile:
            return "binary"
        if "word/document.xml" in names:
            return "docx"
        if any(n.startswith("Contents/section") for n in names):
            return "hwpx"
        return "zip"
    if b"\x00" in data[:8192]:
        return "binary"
    return "text"


def _decode(data: bytes) -> str:
    return decode_korean(data).text


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InvalidInput(N_("the PDF is encrypted: upload it without a password"), code="encrypted")
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            N_("the PDF cannot be read: {reason}"), code="unreadable", params={"reason": str(exc)}
        ) from exc


def _unpack_guard(data: bytes) -> zipfile.ZipFile:
    """The zip of a DOCX or HWPX file, refused when it would unpack to more than MAX_UNPACKED (a zip bomb)."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED:
        raise TooLarge(N_("the file unpacks to more than {mb} MB"), params={"mb": MAX_UNPACKED // (1024 * 1024)})
    return archive


_HWPX_INLINE = {f"{_HWPX_PARAGRAPH}lineBreak": "\n", f"{_HWPX_PARAGRAPH}tab": "\t"}


def _hwpx_run_text(t: ElementTree.Element) -> str:
    return (t.text or "") + "".join(_HWPX_INLINE.get(child.tag, "") + (child.tail or "") for child in t)


def _hwpx_text(data: bytes) -> str:
    """The paragraphs of an HWPX (OWPML, KS X 6101) document: Contents/section*.xml, in section order; a
    table cell's paragraphs come as paragraphs of their own."""
    archive = _unpack_guard(data)
    sections = sorted(
        (n for n in archive.namelist() if re.fullmatch(r"Contents/section\d+\.xml", n)),
        key=lambda n: int(re.sub(r"\D", "", n)),
    )
    lines: list[str] = []
    try:
        for name in sections:
            root = ElementTree.fromstring(archive.read(name))
            for paragraph in root.iter(f"{_HWPX_PARAGRAPH}p"):
                runs = paragraph.findall(f"{_HWPX_PARAGRAPH}run")
                lines.append("".join(_hwpx_run_text(t) for run in runs for t in run.findall(f"{_HWPX_PARAGRAPH}t")))
    except ElementTree.ParseError as exc:
        raise InvalidInput(
            N_("the HWPX file cannot be read: {reason}"), code="unreadable", params={"reason": str(exc)}
        ) from exc
    return "\n".join(lines)


def _docx_text(data: bytes) -> str:
    import docx

    _unpack_guard(data)

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many kinds (KeyError, ValueError, lxml's) for a broken file
        raise InvalidInput(
            N_("the DOCX file cannot be read: {reason}"), code="unreadable", params={"reason": str(exc)}
        ) from exc
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append("\t".join(cell.text for cell in row.cells))
    return "\n".join(parts)


def _hwp_text(data: bytes) -> str:
    return hwp.text_of(data, MAX_UNPACKED)


def extract_text(filename: str, data: bytes) -> tuple[str, str]:
    """(file type, text) of an uploaded document; refused when it is not what its name says, unreadable, or
    has no text."""
    if len(data) > MAX_BYTES:
        raise TooLarge(N_("a document is at most {mb} MB"), params={"mb": MAX_BYTES // (1024 * 1024)})
    named = _EXTENSIONS.get(_extension(filename))
    if named is None:
        raise InvalidInput(
            N_("documents are text, PDF, DOCX, HWPX or HWP files, not {name}"),
            code="file_type",
            params={"name": filename},
        )
    found = _content_type(data)
    if found != named:
        raise InvalidInput(
            N_("the file {name} is not what its name says (its content is not {kind})"),
            code="file_type",
            params={"name": filename, "kind": named.upper()},
        )
    text = {"pdf": _pdf_text, "docx": _docx_text, "hwpx": _hwpx_text, "hwp": _hwp_text}.get(found, _decode)(data)
    text = text.replace("\r\n", "\n").replace("\x00", "")
    if not text.strip():
        raise InvalidInput(N_("no text was found in the file (a scanned document has only images)"), code="no_text")
    return found, text


# --- read models ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskView:
    id: int
    kind: str
    start: int
    end: int
    original: str
    replacement: str
    source: str
    state: str


@dataclass(frozen=True)
class Segment:
    """A stretch of the review text: plain, or covered by a mask (shown highlighted with its decision)."""

    start: int
    text: str
    mask: MaskView | None = None


@dataclass(frozen=True)
class Review:
    """What the publisher reviews: the original with its masks, and the text as it would be published."""

    uid: str
    title: str
    status: str
    file_name: str
    file_type: str
    names: list[str]
    masks: list[MaskView]
    segments: list[Segment]
    preview: str
    pending: int
    counts: dict[str, int] = field(default_factory=dict)


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


def language_of_text(text: str) -> str:
    """ "ko" when at least a tenth of the text's letters are Hangul, else "en"."""
    letters = [ch for ch in text[:20000] if ch.isalpha()]
    hangul = sum("\uac00" <= ch <= "\ud7a3" for ch in letters)
    return "ko" if letters and hangul * 10 >= len(letters) else "en"


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
    session.add_all(
        DocumentMask(
            document_id=document.id,
            kind=f.kind,
            start=f.start,
            end=f.end,
            original=f.original,
            replacement=f.replacement,
            source="found",
            state="proposed",
        )
        for f in found
    )
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


def _document(session: Session, uid: str) -> Document:
    document = session.scalar(select(Document).where(Document.uid == uid))
    if document is None:
        raise NotFound(N_("no document {uid}"), params={"uid": uid})
    return document


def _own(session: Session, who: Identity, uid: str, action: str) -> Document:
    """The document, if `who` uploaded it or manages the catalogue (see `guarded` for the refusal's audit)."""
    document = _document(session, uid)
    if document.uploaded_by != who.user_id and not who.can("opendata.manage"):
        raise PermissionDenied(
            N_("only the document's publisher may review it"), code="not_yours", details={"action": action}
        )
    return document


def guarded(db, who: Identity, uid: str, work: Callable[[Session], T]) -> T:
    """Run `work` on a document under review in a transaction, committed; a refusal (not the document's
    publisher) is audited in a transaction of its own, since the refused one rolls back."""
    try:
        with db.session() as s:
            result = work(s)
            s.commit()
            return result
    except PermissionDenied as exc:
        if exc.code == "not_yours":
            with db.session() as s:
                audit.record(s, who, "access_denied", "document", uid, exc.details)
                s.commit()
        raise


def _mask_view(m: DocumentMask) -> MaskView:
    return MaskView(m.id, m.kind, m.start, m.end, m.original, m.replacement, m.source, m.state)


def _finding(m: DocumentMask) -> masking.Finding:
    return masking.Finding(m.kind, m.start, m.end, m.original, m.replacement)


def _masks(session: Session, document: Document) -> list[DocumentMask]:
    return list(
        session.scalars(
            select(DocumentMask)
            .where(DocumentMask.document_id == document.id)
            .order_by(DocumentMask.start, DocumentMask.id)
        )
    )


def _segments(text: str, masks: list[DocumentMask]) -> list[Segment]:
    shown = masking.resolve(_finding(m) for m in masks if m.state != "undone")
    by_span = {(m.start, m.end, m.kind): m for m in masks if m.state != "undone"}
    segments: list[Segment] = []
    at = 0
    for f in shown:
        if f.start > at:
            segments.append(Segment(at, text[at : f.start]))
        segments.append(Segment(f.start, text[f.start : f.end], _mask_view(by_span[(f.start, f.end, f.kind)])))
        at = f.end
    if at < len(text):
        segments.append(Segment(at, text[at:]))
    return segments


def review(session: Session, who: Identity, uid: str) -> Review:
    """The review screen's model; reading the original is audited."""
    document = _own(session, who, uid, "review")
    masks = _masks(session, document)
    live = [m for m in masks if m.state != "undone"]
    if document.status == "review":
        audit.record(session, who, "read_original", "document", document.uid, {"masks": len(masks)})
    return Review(
        uid=document.uid,
        title=document.title,
        status=document.status,
        file_name=document.file_name,
        file_type=document.file_type,
        names=list(document.names or []),
        masks=[_mask_view(m) for m in masks],
        segments=_segments(document.text, masks) if document.status == "review" else [],
        preview=masking.apply_all(document.text, [_finding(m) for m in live])
        if document.status == "review"
        else document.masked_text,
        pending=sum(m.state == "proposed" for m in masks),
        counts=dict(Counter(m.kind for m in live)),
    )


def _in_review(session: Session, who: Identity, uid: str, action: str) -> Document:
    document = _own(session, who, uid, action)
    if document.status != "review":
        raise Conflict(N_("the document is already published"), code="published")
    return document


def decide(session: Session, who: Identity, uid: str, mask_id: int, decision: str) -> DocumentMask:
    """Accept or undo one mask (either may be changed until publication)."""
    if decision not in DECISIONS:
        raise InvalidInput(N_("a decision is accept or undo"), code="decision")
    document = _in_review(session, who, uid, decision)
    mask = session.get(DocumentMask, mask_id)
    if mask is None or mask.document_id != document.id:
        raise NotFound(N_("no mask {id} on this document"), params={"id": mask_id})
    mask.state = DECISIONS[decision]
    mask.decided_by = who.user_id
    mask.decided_at = utcnow()
    audit.record(
        session,
        who,
        f"mask_{mask.state}",
        "document",
        document.uid,
        {"mask": mask.id, "kind": mask.kind, "start": mask.start, "end": mask.end, "source": mask.source},
    )
    session.flush()
    return mask


def accept_all(session: Session, who: Identity, uid: str) -> int:
    """Accept every mask still proposed; how many."""
    document = _in_review(session, who, uid, "accept_all")
    pending = [m for m in _masks(session, document) if m.state == "proposed"]
    now = utcnow()
    for m in pending:
        m.state, m.decided_by, m.decided_at = "accepted", who.user_id, now
    audit.record(
        session,
        who,
        "mask_accepted",
        "document",
        document.uid,
        {"masks": [m.id for m in pending], "kinds": dict(Counter(m.kind for m in pending))},
    )
    session.flush()
    return len(pending)


def add_mask(
    session: Session, who: Identity, uid: str, string: str, start: int | None = None, end: int | None = None
) -> list[DocumentMask]:
    """The publisher's own mask, accepted: the selected stretch [start, end) when it holds `string`, else
    every occurrence of `string`."""
    document = _in_review(session, who, uid, "add")
    string = string.strip()
    if not string:
        raise InvalidInput(N_("type or select the text to mask"), code="empty")
    text = document.text
    if start is not None and end is not None and 0 <= start < end <= len(text) and text[start:end].strip() == string:
        found = [masking.Finding("manual", start, end, text[start:end], masking.STAR * (end - start))]
    else:
        found = masking.occurrences(text, string)
    if not found:
        raise InvalidInput(N_("the text to mask is not in the document"), code="not_found")
    now = utcnow()
    added = [
        DocumentMask(
            document_id=document.id,
            kind=f.kind,
            start=f.start,
            end=f.end,
            original=f.original,
            replacement=f.replacement,
            source="publisher",
            state="accepted",
            decided_by=who.user_id,
            decided_at=now,
        )
        for f in found
    ]
    session.add_all(added)
    session.flush()
    audit.record(
        session,
        who,
        "mask_added",
        "document",
        document.uid,
        {"masks": [m.id for m in added], "spans": [[m.start, m.end] for m in added]},
    )
    return added


def publish(session: Session, who: Identity, uid: str) -> Document:
    """Publish the masked text: every mask must be decided; the original and the masks' originals are gone."""
    document = _in_review(session, who, uid, "publish")
    masks = _masks(session, document)
    pending = [m for m in masks if m.state == "proposed"]
    if pending:
        raise Conflict(
            N_("{count} proposed masks are not decided yet: accept or undo each before publishing"),
            code="undecided",
            params={"count": len(pending)},
        )
    accepted = [m for m in masks if m.state == "accepted"]
    document.masked_text = masking.apply_all(document.text, [_finding(m) for m in accepted])
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
