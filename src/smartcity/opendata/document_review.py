"""The review of a document before publication: the masks the platform proposed, the publisher's decisions
(accept or undo each, or all at once) and their own masks; the review screen's read model. Only the
document's publisher (or a catalogue manager) reviews it; reading the original, each decision and each
refusal are audited, never with the personal data itself."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.db import utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from smartcity.core.i18n import N_
from smartcity.opendata import masking
from smartcity.opendata.models import Document, DocumentMask

DECISIONS = {"accept": "accepted", "undo": "undone"}
T = TypeVar("T")


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


def find_document(session: Session, uid: str) -> Document:
    document = session.scalar(select(Document).where(Document.uid == uid))
    if document is None:
        raise NotFound(N_("no document {uid}"), params={"uid": uid})
    return document


def _own(session: Session, who: Identity, uid: str, action: str) -> Document:
    """The document, if `who` uploaded it or manages the catalogue (see `guarded` for the refusal's audit)."""
    document = find_document(session, uid)
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


def finding_of(m: DocumentMask) -> masking.Finding:
    return masking.Finding(m.kind, m.start, m.end, m.original, m.replacement)


def mask_row(
    document: Document,
    finding: masking.Finding,
    source: str,
    state: str,
    decided_by: int | None = None,
    decided_at: datetime | None = None,
) -> DocumentMask:
    """A mask of `document` over a finding: the platform's ("found", proposed) or the publisher's (accepted,
    with who decided and when)."""
    return DocumentMask(
        document_id=document.id,
        kind=finding.kind,
        start=finding.start,
        end=finding.end,
        original=finding.original,
        replacement=finding.replacement,
        source=source,
        state=state,
        decided_by=decided_by,
        decided_at=decided_at,
    )


def masks_of(session: Session, document: Document) -> list[DocumentMask]:
    return list(
        session.scalars(
            select(DocumentMask)
            .where(DocumentMask.document_id == document.id)
            .order_by(DocumentMask.start, DocumentMask.id)
        )
    )


def _segments(text: str, masks: list[DocumentMask]) -> list[Segment]:
    shown = masking.resolve(finding_of(m) for m in masks if m.state != "undone")
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
    masks = masks_of(session, document)
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
        preview=masking.apply_all(document.text, [finding_of(m) for m in live])
        if document.status == "review"
        else document.masked_text,
        pending=sum(m.state == "proposed" for m in masks),
        counts=dict(Counter(m.kind for m in live)),
    )


def in_review(session: Session, who: Identity, uid: str, action: str) -> Document:
    document = _own(session, who, uid, action)
    if document.status != "review":
        raise Conflict(N_("the document is already published"), code="published")
    return document


def decide(session: Session, who: Identity, uid: str, mask_id: int, decision: str) -> DocumentMask:
    """Accept or undo one mask (either may be changed until publication)."""
    if decision not in DECISIONS:
        raise InvalidInput(N_("a decision is accept or undo"), code="decision")
    document = in_review(session, who, uid, decision)
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
    document = in_review(session, who, uid, "accept_all")
    pending = [m for m in masks_of(session, document) if m.state == "proposed"]
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
    document = in_review(session, who, uid, "add")
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
    added = [mask_row(document, f, "publisher", "accepted", who.user_id, now) for f in found]
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
