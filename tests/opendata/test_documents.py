"""Documents of the Information Communication Plaza: upload, masks proposed, the publisher's decisions,
publication of the masked text only, search, and refusals — on both stores."""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import func, select

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, TooLarge
from smartcity.core.models import AuditEntry
from smartcity.opendata import documents
from smartcity.opendata.documents import Upload
from smartcity.opendata.models import Document, DocumentMask
from tests.conftest import make_user

LETTER = (
    "민원 회신\n"
    "민원인 홍길동(주민등록번호 900101-1234568)께서 제출하신 도로 보수 민원에 대하여 알려드립니다.\n"
    "연락처 010-1234-5678, 전자우편 hong@example.com, 주소 서울특별시 강남구 테헤란로 152, 3층 301호.\n"
    "담당자 02-2133-1234 로 문의하십시오. 보수 공사는 다음 달에 시작합니다.\n"
)


def publisher(db, name: str = "pub") -> Identity:
    return Identity(user_id=make_user(db, name, "data_publisher"), username=name, role="data_publisher", via="session")


def put(db, who: Identity, text: str = LETTER, filename: str = "letter.txt", **kw) -> str:
    with db.session() as s:
        return documents.upload(
            s, who, Upload(filename, text.encode(), kw.pop("title", "도로 보수 민원 회신"), **kw)
        ).uid


def actions(db, uid: str) -> list[str]:
    with db.session() as s:
        return [e.action for e in reversed(audit.entries(s, object_type="document", object_id=uid))]


def test_masks_are_proposed_reviewed_and_only_the_masked_text_is_published(db):
    who = publisher(db)
    uid = put(db, who, names=["홍길동"])
    with db.session() as s:
        review = documents.review(s, who, uid)
    assert review.status == "review" and review.pending == len(review.masks)
    assert {m.kind for m in review.masks} == {"name", "rrn", "phone", "email", "address"}
    assert "900101-1234568" not in review.preview and "홍○○" in review.preview
    assert "".join(seg.text for seg in review.segments) == LETTER

    with db.session() as s, pytest.raises(Conflict) as refused:
        documents.publish(s, who, uid)
    assert refused.value.code == "undecided"

    office = next(m for m in review.masks if m.original == "02-2133-1234")  # the office's number is public
    with db.session() as s:
        documents.decide(s, who, uid, office.id, "undo")
        assert documents.accept_all(s, who, uid) == len(review.masks) - 1
        added = documents.add_mask(s, who, uid, "다음 달")
        assert [(m.source, m.state) for m in added] == [("publisher", "accepted")]
        documents.publish(s, who, uid)

    with db.session() as s:
        shown = documents.public_document(s, uid)
        stored = s.scalar(select(Document).where(Document.uid == uid))
        originals = set(s.scalars(select(DocumentMask.original).where(DocumentMask.document_id == stored.id)))
    for secret in ("홍길동", "900101-1234568", "010-1234-5678", "hong@example.com", "152, 3층 301호", "다음 달"):
        assert secret not in shown.text
    assert "02-2133-1234" in shown.text and "테헤란로" in shown.text and "hong" not in shown.text
    assert stored.text == "" and originals == {""}
    assert actions(db, uid) == [
        "upload",
        "read_original",
        "mask_undone",
        "mask_accepted",
        "mask_added",
        "publish",
    ]


def test_audit_entries_never_hold_the_personal_data(db):
    who = publisher(db)
    uid = put(db, who, names=["홍길동"])
    with db.session() as s:
        documents.review(s, who, uid)
        documents.accept_all(s, who, uid)
        documents.publish(s, who, uid)
    with db.session() as s:
        details = " ".join(str(e.detail) for e in s.scalars(select(AuditEntry)))
    assert actions(db, uid) == ["upload", "read_original", "mask_accepted", "publish"]
    for secret in ("홍길동", "1234568", "5678", "hong@"):
        assert secret not in details


def test_the_public_sees_published_documents_only_and_finds_them_in_korean(db):
    who = publisher(db)
    draft = put(db, who, "하수도 정비 계획 초안", title="하수도 정비 계획")
    done = put(db, who, names=["홍길동"])
    with db.session() as s:
        documents.accept_all(s, who, done)
        documents.publish(s, who, done)
    with db.session() as s:
        with pytest.raises(NotFound):
            documents.public_document(s, draft)
        assert [d.uid for d in documents.published(s).documents] == [done]
        assert [d.uid for d in documents.published(s, "보수공사").documents] == [done]  # 보수 + 공사
        assert documents.published(s, "하수도").total == 0
        assert documents.published(s, "홍길동").total == 0  # a masked name is not searchable


def test_another_publisher_is_refused_and_the_refusal_audited(db):
    owner, other = publisher(db, "owner"), publisher(db, "other")
    uid = put(db, owner)
    with pytest.raises(PermissionDenied):
        documents.guarded(db, other, uid, lambda s: documents.review(s, other, uid))
    assert actions(db, uid) == ["upload", "access_denied"]
    with db.session() as s:
        assert s.scalar(select(Document.status).where(Document.uid == uid)) == "review"


def test_a_selected_stretch_masks_that_place_only(db):
    who = publisher(db)
    uid = put(db, who, "보수 공사 안내. 보수 공사 일정.", title="공사 안내")
    with db.session() as s:
        one = documents.add_mask(s, who, uid, "보수", start=10, end=12)
        every = documents.add_mask(s, who, uid, "안내")
    assert [(m.start, m.end) for m in one] == [(10, 12)]
    assert [(m.start, m.end) for m in every] == [(6, 8)]
    with db.session() as s:
        documents.publish(s, who, uid)
        assert documents.public_document(s, uid).text == "보수 공사 **. ** 공사 일정."


def test_a_published_document_can_no_longer_change(db):
    who = publisher(db)
    uid = put(db, who, "공지 사항", title="공지")
    with db.session() as s:
        documents.publish(s, who, uid)
    with db.session() as s, pytest.raises(Conflict):
        documents.add_mask(s, who, uid, "공지")


# --- files --------------------------------------------------------------------------------------------


def pdf_of(line: str) -> bytes:
    """A one-page PDF with `line` in Helvetica, its cross-reference table computed (no PDF library writes it)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({line}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def docx_of(*paragraphs: str, cells: tuple[str, ...] = ()) -> bytes:
    import docx

    document = docx.Document()
    for p in paragraphs:
        document.add_paragraph(p)
    if cells:
        table = document.add_table(rows=1, cols=len(cells))
        for cell, value in zip(table.rows[0].cells, cells, strict=True):
            cell.text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


HP = "http://www.hancom.co.kr/hwpml/2011/paragraph"


def hwpx_of(*sections: list[str], cell: str = "") -> bytes:
    """An HWPX package as OWPML lays it out: mimetype, and Contents/section<n>.xml of hp:p/hp:run/hp:t, a
    line break inside a run and a table whose cell holds a paragraph of its own (written here: no library
    writes HWPX)."""

    def paragraph(text: str) -> str:
        head, _, tail = text.partition("\n")
        broken = f"<hp:lineBreak/>{tail}" if tail else ""
        return f"<hp:p><hp:run><hp:t>{head}{broken}</hp:t></hp:run></hp:p>"

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("mimetype", "application/hwp+zip")
        for n, paragraphs in enumerate(sections):
            table = (
                f"<hp:p><hp:run><hp:tbl><hp:tr><hp:tc><hp:subList>{paragraph(cell)}</hp:subList></hp:tc></hp:tr>"
                "</hp:tbl></hp:run></hp:p>"
                if cell and n == 0
                else ""
            )
            body = "".join(paragraph(p) for p in paragraphs) + table
            z.writestr(f"Contents/section{n}.xml", f'<hs:sec xmlns:hs="urn:s" xmlns:hp="{HP}">{body}</hs:sec>')
    return out.getvalue()


def test_text_is_read_from_hwpx_in_section_order():
    data = hwpx_of(["민원 회신", "연락처 010-5555-6666\n담당 부서"], ["둘째 구역"], cell="성명 이영희")
    kind, text = documents.extract_text("reply.hwpx", data)
    assert kind == "hwpx"
    assert text.split("\n") == ["민원 회신", "연락처 010-5555-6666", "담당 부서", "", "성명 이영희", "둘째 구역"]


def test_a_zip_that_unpacks_too_far_is_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", "<w:document/>")
        with z.open("word/media/zeros.bin", "w") as f:
            for _ in range(documents.MAX_UNPACKED // (1024 * 1024) + 1):
                f.write(bytes(1024 * 1024))
    with pytest.raises(TooLarge):
        documents.extract_text("bomb.docx", out.getvalue())


def test_text_is_read_from_pdf_docx_and_cp949():
    kind, text = documents.extract_text("reply.pdf", pdf_of("Contact 010-1234-5678 or hong@example.com"))
    assert kind == "pdf" and "010-1234-5678" in text and "hong@example.com" in text
    kind, text = documents.extract_text("reply.docx", docx_of("민원인 연락처 010-9876-5432", cells=("성명", "김철수")))
    assert kind == "docx" and "010-9876-5432" in text and "김철수" in text
    kind, text = documents.extract_text("reply.txt", "연락처 010-1111-2222".encode("cp949"))
    assert kind == "text" and text == "연락처 010-1111-2222"


@pytest.mark.parametrize(
    ("filename", "data", "code"),
    [
        ("reply.pdf", "그냥 글입니다".encode(), "file_type"),  # not what its extension says
        ("reply.docx", pdf_of("x"), "file_type"),
        ("reply.txt", b"%PDF-1.4 not really", "file_type"),
        ("reply.hwp", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500, "unreadable"),  # an OLE header only
        ("reply.hwp", hwpx_of(["글"]), "file_type"),  # HWPX content named .hwp
        ("reply.hwpx", b"PK\x03\x04broken", "file_type"),
        ("reply.exe", b"MZ", "file_type"),
        ("reply.pdf", b"%PDF-1.4\nbroken", "unreadable"),
        ("reply.txt", b"   \n ", "no_text"),
    ],
)
def test_bad_files_are_refused_with_a_clear_code(filename, data, code):
    with pytest.raises(InvalidInput) as refused:
        documents.extract_text(filename, data)
    assert refused.value.code == code


def test_a_document_language_is_told_by_its_letters(db):
    assert documents.language_of_text(LETTER) == "ko"
    assert documents.language_of_text("Reply to the request of 12 March about the street lights.") == "en"
    who = publisher(db)
    uid = put(db, who, "Reply about the street lights along the main road of 강남구.", title="Street lights")
    with db.session() as s:
        documents.publish(s, who, uid)
        assert s.scalar(select(Document.language).where(Document.uid == uid)) == "en"


def test_a_file_over_the_limit_is_refused():
    with pytest.raises(TooLarge):
        documents.extract_text("big.txt", b"a" * (documents.MAX_BYTES + 1))


def test_a_refused_upload_stores_nothing(db):
    who = publisher(db)
    for title, filename, data in [
        ("회신", "reply.hwp", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64),
        ("홍길동 010-1234-5678 회신", "reply.txt", "본문".encode()),  # personal data in the title
        ("", "reply.txt", "본문".encode()),
    ]:
        with pytest.raises(InvalidInput), db.session() as s:
            documents.upload(s, who, Upload(filename, data, title))
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Document)) == 0
        assert s.scalar(select(func.count()).select_from(DocumentMask)) == 0
