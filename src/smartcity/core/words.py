"""Search words: a text's tokens as every module's search indexes and asks them, the same way for both.

Korean by morphemes (kiwipiepy: 교통정보를 → 교통, 정보), so a two-syllable word matches inside a compound and a
particle or an ending never stops a match (놀이터를 → 놀이터); a noun of three or more syllables the analyser
keeps whole (서울특별시) is also given by its first and last two syllables; English words lower-cased with a
light plural folding (Lots → lot); numbers as written. The open data catalogue's full-text search and the
participation module's debate search stand on it."""

from __future__ import annotations

import re
import threading
from typing import Any

_CONTENT_TAGS = ("NNG", "NNP", "XR", "SH", "SL", "SN", "VV", "VA")
_HANGUL = re.compile(r"^[가-힣]+$")
_kiwi: Any = None
_kiwi_lock = threading.Lock()


def analyser() -> Any:
    """The process's Korean morpheme analyser, loaded on first use (a second or two and 300 MB: never at import)."""
    global _kiwi
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                # Without the multi-word proper-noun dictionary: it made a title one token with its spaces
                # and particles inside ('해리 포터와 마법사의 돌': '마법사' never found it), and it was about two
                # thirds of the load a process's first search pays (12 -> 4 s at load 14).
                _kiwi = Kiwi(load_multi_dict=False)
    return _kiwi


def _fold_english(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokens(value: str) -> list[str]:
    """The search tokens of a text (Korean morphemes, English words, numbers), in order, repeats kept."""
    found: list[str] = []
    if not value or not value.strip():
        return found
    for token in analyser().tokenize(value):
        tag = token.tag.split("-")[0]
        if tag not in _CONTENT_TAGS:
            continue
        form = token.form.lower()
        if tag == "SL":
            form = _fold_english(form)
        found.append(form)
        if tag in ("NNG", "NNP") and len(form) >= 3 and _HANGUL.match(form):
            found += [form[:2], form[-2:]]
    return found
