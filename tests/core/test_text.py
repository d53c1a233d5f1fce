"""core.text: the one rule for reading Korean users' text files (UTF-8 with or without BOM, else CP949)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartcity.core.errors import InvalidInput
from smartcity.core.i18n import translate
from smartcity.core.text import decode, decode_korean

SAMPLE = "정류소명,위도,경도\n강남역,37.4979,127.0276\n"


def test_utf8_without_a_byte_order_mark():
    assert decode_korean(SAMPLE.encode("utf-8")) == (SAMPLE, "utf-8")


def test_a_byte_order_mark_is_read_and_dropped():
    found = decode_korean(b"\xef\xbb\xbf" + SAMPLE.encode("utf-8"))
    assert found.encoding == "utf-8-sig" and found.text == SAMPLE and not found.text.startswith("\ufeff")


@pytest.mark.parametrize("codec", ["cp949", "euc-kr"])
def test_cp949_and_euc_kr_files_are_read(codec):
    # 똠 is in CP949 but not in EUC-KR's 2,350 syllables: only the CP949 sample carries it.
    sample = SAMPLE + ("똠방각하\n" if codec == "cp949" else "")
    data = sample.encode(codec)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert decode_korean(data) == (sample, "cp949")


def test_mixed_encodings_are_refused_with_the_line_that_cannot_be_read():
    # A UTF-8 file with one line pasted from a CP949 file, then a byte neither code page has (0xFF).
    data = "이름\n홍길동\n".encode() + "김철수\n".encode("cp949") + b"\xff\xfe\n"
    with pytest.raises(InvalidInput) as caught:
        decode(data)
    assert caught.value.code == "encoding" and caught.value.params == {"line": 3}
    assert "3번째 줄" in translate("ko", caught.value.template, **caught.value.params)


def test_binary_data_is_refused_with_the_code_its_caller_asks():
    with pytest.raises(InvalidInput) as caught:
        decode(b"\x89PNG\r\n\x1a\n\xff\xff\xff", code="invalid_encoding")
    assert caught.value.code == "invalid_encoding" and caught.value.params == {"line": 1}


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_any_utf8_text_reads_back_as_written(text):
    found = decode_korean(text.encode("utf-8"))
    assert found.text == (text[1:] if text.startswith("\ufeff") else text)
