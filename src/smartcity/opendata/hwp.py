"""The body text of an HWP 5 document (Hangul's binary format, as Hancom publishes it: "HWP 5.0 file format").

An HWP 5 file is an OLE compound file (read with olefile). `FileHeader` says whether the sections are
compressed (raw deflate) or encrypted; `BodyText/Section0…N` hold the body as records, each with a 32-bit
header (tag: 10 bits, level: 10 bits, size: 12 bits, 0xFFF meaning a 32-bit size follows). A paragraph's text
is an HWPTAG_PARA_TEXT record: UTF-16LE, where code points below 32 are controls — a few stand alone (line
and paragraph breaks), the rest take 8 code units (the control and its parameters: a table, a footnote, a
field…), of which a tab is the only one that is text. Each paragraph becomes a line, table cells' paragraphs
included (they are records of the same section), as in the HWPX reader.

Refused: an encrypted (password) document, and a distribution document (배포용 문서, its body kept encrypted
under ViewText): neither has readable text without Hangul.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

from smartcity.core.errors import InvalidInput, TooLarge
from smartcity.core.i18n import N_

SIGNATURE = b"HWP Document File"
HWPTAG_PARA_TEXT = 0x010 + 51
_COMPRESSED, _ENCRYPTED, _DISTRIBUTION = 0x1, 0x2, 0x4
# Controls that occupy one code unit; every other code point below 32 occupies eight.
_CHAR_CONTROLS = {0, 10, 13, *range(24, 32)}
_SECTION = re.compile(r"Section(\d+)")


def _unreadable(reason: str) -> InvalidInput:
    return InvalidInput(N_("the HWP file cannot be read: {reason}"), code="unreadable", params={"reason": reason})


def paragraph_text(payload: bytes) -> str:
    """The text of one HWPTAG_PARA_TEXT record, its controls dropped (a tab kept, a line break a newline)."""
    units = struct.unpack(f"<{len(payload) // 2}H", payload[: len(payload) // 2 * 2])
    out: list[str] = []
    i = 0
    while i < len(units):
        unit = units[i]
        if unit >= 32:
            out.append(chr(unit))
            i += 1
        elif unit in _CHAR_CONTROLS:
            if unit == 10:
                out.append("\n")
            elif unit in (24, 30, 31):  # a hyphen, a non-breaking and a fixed-width space
                out.append("-" if unit == 24 else " ")
            i += 1
        else:
            if unit == 9:
                out.append("\t")
            i += 8
    # A surrogate pair was read as two code units: join them back.
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")


def records(data: bytes):
    """(tag, level, payload) of each record of a section's stream."""
    at = 0
    while at + 4 <= len(data):
        (header,) = struct.unpack_from("<I", data, at)
        at += 4
        tag, level, size = header & 0x3FF, (header >> 10) & 0x3FF, header >> 20
        if size == 0xFFF:
            if at + 4 > len(data):
                raise _unreadable("a record's size is cut off")
            (size,) = struct.unpack_from("<I", data, at)
            at += 4
        if at + size > len(data):
            raise _unreadable("a record runs past its section")
        yield tag, level, data[at : at + size]
        at += size


def inflate(raw: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(raw, limit)
    except zlib.error as exc:
        raise _unreadable(f"a section does not decompress ({exc})") from None
    if inflater.unconsumed_tail:
        raise TooLarge(N_("the file unpacks to more than {mb} MB"), params={"mb": limit // (1024 * 1024)})
    return out


def text_of(data: bytes, max_unpacked: int) -> str:
    """The paragraphs of an HWP 5 document, section by section, a line each; a section unpacking to more
    than `max_unpacked` bytes is refused (a deflate bomb)."""
    import olefile

    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except (OSError, ValueError) as exc:  # olefile's "not an OLE2 structured storage file" is an OSError
        raise _unreadable(str(exc)) from None
    try:
        if not ole.exists("FileHeader"):
            raise _unreadable("it has no FileHeader (an OLE file that is not an HWP document)")
        header = ole.openstream("FileHeader").read()
        if not header.startswith(SIGNATURE) or len(header) < 40:
            raise _unreadable("its FileHeader is not an HWP 5 header")
        (flags,) = struct.unpack_from("<I", header, 36)
        if flags & _ENCRYPTED:
            raise InvalidInput(N_("the HWP file is protected by a password: upload it without one"), code="encrypted")
        if flags & _DISTRIBUTION:
            raise InvalidInput(
                N_("the HWP file is a distribution document (its text is locked): save it as HWPX or PDF"),
                code="encrypted",
            )
        sections = sorted(
            (int(m[1]), entry)
            for entry in ole.listdir(streams=True, storages=False)
            if len(entry) == 2 and entry[0] == "BodyText" and (m := _SECTION.fullmatch(entry[1]))
        )
        if not sections:
            raise _unreadable("it has no BodyText sections")
        lines: list[str] = []
        for _, entry in sections:
            raw = ole.openstream(entry).read()
            if flags & _COMPRESSED:
                raw = inflate(raw, max_unpacked)
            lines.extend(paragraph_text(p) for tag, _, p in records(raw) if tag == HWPTAG_PARA_TEXT)
        return "\n".join(lines)
    finally:
        ole.close()
