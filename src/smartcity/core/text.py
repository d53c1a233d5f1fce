"""Reading the text files Korean users bring: UTF-8 (with or without a byte order mark), else CP949.

CP949 is Windows' Korean code page and a superset of EUC-KR: what Excel and Hangul save a CSV or a text file
in by default. One rule for every importer (gazetteer lists, asset lists, open data files, documents), so a
file one of them reads the others read too.
"""

from __future__ import annotations

from typing import NamedTuple

from smartcity.core.errors import InvalidInput
from smartcity.core.i18n import N_


class Decoded(NamedTuple):
    """A file's text and the encoding it was read in: utf-8-sig, utf-8 or cp949."""

    text: str
    encoding: str


def decode_korean(data: bytes, *, code: str = "encoding") -> Decoded:
    """`data` as text: UTF-8 with a byte order mark, UTF-8, else CP949 (EUC-KR). A file that neither reads
    (mixed encodings, or not text) is refused with the line of its first byte UTF-8 cannot read; `code` is
    the error's code, for importers whose API already named it."""
    encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    try:
        return Decoded(data.decode(encoding), encoding)
    except UnicodeDecodeError as utf8_error:
        try:
            return Decoded(data.decode("cp949"), "cp949")
        except UnicodeDecodeError:
            line = data[: utf8_error.start].count(b"\n") + 1
            raise InvalidInput(
                N_("the file is neither UTF-8 nor CP949/EUC-KR (mixed encodings?): line {line} cannot be read"),
                code=code,
                params={"line": line},
            ) from None


def decode(data: bytes, *, code: str = "encoding") -> str:
    """`data` as text, read as `decode_korean` reads it."""
    return decode_korean(data, code=code).text
