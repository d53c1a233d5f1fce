"""Reading an uploaded document's text: what the file really is (by its content, not its name) and its text —
plain text (UTF-8 or CP949), PDF (pypdf), DOCX (python-docx), HWPX (the open OWPML format, with the standard
library) and HWP 5 (olefile, opendata/hwp.py); a zipped format is refused when it would unpack too large."""

from __future__ import annotations

import io
import re
import zipfile
from xml.etree import ElementTree

from smartcity.core.errors import InvalidInput, TooLarge
from smartcity.core.i18n import N_
from smartcity.core.text import decode_korean
from smartcity.opendata import hwp

MAX_BYTES = 20 * 1024 * 1024
_EXTENSIONS = {"txt": "text", "text": "text", "pdf": "pdf", "docx": "docx", "hwp": "hwp", "hwpx": "hwpx"}
MAX_UNPACKED = 200 * 1024 * 1024  # a zipped document (DOCX, HWPX) unpacks to at most this
_HWPX_PARAGRAPH = "{http://www.hancom.co.kr/hwpml/2011/paragraph}"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


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


def language_of_text(text: str) -> str:
    """ "ko" when at least a tenth of the text's letters are Hangul, else "en"."""
    letters = [ch for ch in text[:20000] if ch.isalpha()]
    hangul = sum("\uac00" <= ch <= "\ud7a3" for ch in letters)
    return "ko" if letters and hangul * 10 >= len(letters) else "en"
