"""HWP 5 documents: their body text read (olefile, the BodyText records), masked like any document; a
locked or broken HWP file refused with a clear code. The files are written by hwp-converter-ai (another
project's HWP writer, from a template saved by Hangul), not by this code."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import olefile
import pytest
from hwp_converter_ai import HwpWriter

from smartcity.core.errors import InvalidInput, TooLarge
from smartcity.opendata import documents, hwp

LETTER = (
    "# 민원 회신\n\n"
    "민원인 홍길동(주민등록번호 900101-1234568)께서 제출하신 도로 보수 민원에 대하여 알려드립니다.\n\n"
    "연락처 010-1234-5678, 전자우편 hong@example.com 으로 회신하였습니다.\n\n"
    "보수 공사는 다음 달에 시작합니다.\n"
)


def hwp_of(markdown: str, tmp_path: Path) -> bytes:
    path = tmp_path / "letter.hwp"
    HwpWriter().from_markdown(markdown, path)
    return path.read_bytes()


def test_the_body_text_of_an_hwp_document_is_read_and_its_personal_data_found(tmp_path):
    data = hwp_of(LETTER, tmp_path)
    assert data.startswith(b"\xd0\xcf\x11\xe0")  # an OLE compound file, as Hangul writes HWP 5
    kind, text = documents.extract_text("letter.hwp", data)
    assert kind == "hwp"
    lines = [line for line in text.split("\n") if line.strip()]
    assert lines[0] == "민원 회신"
    assert "민원인 홍길동(주민등록번호 900101-1234568)께서 제출하신 도로 보수 민원에 대하여 알려드립니다." in lines
    assert lines[-1] == "보수 공사는 다음 달에 시작합니다."
    from smartcity.opendata import masking

    found = {f.kind for f in masking.find(text, ["홍길동"])}
    assert {"rrn", "phone", "email", "name"} <= found


def _with_flags(data: bytes, flags: int) -> bytes:
    """The same file with its FileHeader's property bits set (olefile rewrites a stream of the same size)."""
    path = io.BytesIO(data)
    ole = olefile.OleFileIO(path, write_mode=True)
    header = bytearray(ole.openstream("FileHeader").read())
    struct.pack_into("<I", header, 36, struct.unpack_from("<I", header, 36)[0] | flags)
    ole.write_stream("FileHeader", bytes(header))
    ole.close()
    return path.getvalue()


@pytest.mark.parametrize(("flags", "code"), [(0x2, "encrypted"), (0x4, "encrypted")])
def test_a_password_or_distribution_document_is_refused(tmp_path, flags, code):
    with pytest.raises(InvalidInput) as refused:
        documents.extract_text("letter.hwp", _with_flags(hwp_of(LETTER, tmp_path), flags))
    assert refused.value.code == code


def test_a_broken_or_foreign_ole_file_is_refused_as_unreadable(tmp_path):
    good = hwp_of(LETTER, tmp_path)
    ole = olefile.OleFileIO(io.BytesIO(good))
    size = len(ole.openstream("BodyText/Section0").read())
    ole.close()
    broken = io.BytesIO(good)
    writable = olefile.OleFileIO(broken, write_mode=True)
    writable.write_stream("BodyText/Section0", b"\x78" * size)  # no longer deflate data
    writable.close()
    with pytest.raises(InvalidInput) as refused:
        documents.extract_text("letter.hwp", broken.getvalue())
    assert refused.value.code == "unreadable"


def test_a_paragraph_record_keeps_tabs_and_line_breaks_and_drops_controls():
    # A table control (11, eight code units with its parameters), text, a tab (eight units), a line break,
    # a character outside the BMP (a surrogate pair; the writer above drops those), the paragraph's end.
    units = [11, 0x6C74, 0x6274, 0, 0, 0, 0, 11, *map(ord, "성명"), 9, 0, 0, 0, 0, 0, 0, 9, 10, *map(ord, "이영희")]
    units += [0xD840, 0xDC00, 13]
    assert hwp.paragraph_text(struct.pack(f"<{len(units)}H", *units)) == "성명\t\n이영희\U00020000"


def test_a_section_that_unpacks_too_far_is_refused():
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = bomb.compress(b"\x00" * (4 * 1024 * 1024)) + bomb.flush()
    with pytest.raises(TooLarge):
        hwp.inflate(raw, 1024 * 1024)
    assert len(hwp.inflate(raw, 8 * 1024 * 1024)) == 4 * 1024 * 1024


def test_an_uploaded_hwp_document_goes_to_review_with_its_masks_proposed(db, tmp_path):
    from sqlalchemy import select

    from smartcity.core.auth import Identity
    from smartcity.opendata.documents import Upload
    from smartcity.opendata.models import Document, DocumentMask
    from tests.conftest import make_user

    who = Identity(user_id=make_user(db, "pub", "publisher"), username="pub", role="publisher", via="session")
    with db.session() as s:
        uid = documents.upload(s, who, Upload("letter.hwp", hwp_of(LETTER, tmp_path), "도로 보수 민원 회신")).uid
    with db.session() as s:
        document = s.scalar(select(Document).where(Document.uid == uid))
        assert (document.status, document.file_type) == ("review", "hwp")
        kinds = set(s.scalars(select(DocumentMask.kind).where(DocumentMask.document_id == document.id)))
    assert {"rrn", "phone", "email"} <= kinds
