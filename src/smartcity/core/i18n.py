"""Languages: the Babel catalogues of core and every module, names kept per language (`name_ko`,
`name_en`…), the choice of a language among those the city profile offers, and Korean particles.

Every user-facing text is an English msgid translated through the catalogues; a value stored per language
is read with `localized()`. Which languages exist is the city profile's `languages`, never a fixed pair.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

PACKAGE = Path(__file__).parent.parent


@cache
def translations(language: str) -> Translations:
    """The catalogue for `language`, compiled in memory from the .po files of core and every module."""
    merged: Translations | None = None
    for po in sorted(PACKAGE.glob(f"**/locale/{language}/LC_MESSAGES/messages.po")):
        with po.open("rb") as f:
            catalog = read_po(f, locale=language)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        buf.seek(0)
        found = Translations(buf)
        # The first catalogue is the base: merge() keeps the base's plural rule, and an empty Translations
        # has English's (n != 1), which asked Korean's one-form catalogues for a second form they lack.
        merged = found if merged is None else merged.merge(found)
    return merged if merged is not None else Translations()


def gettext(language: str, message: str) -> str:
    return translations(language).ugettext(message)


def translate(language: str, message: str, **values: Any) -> str:
    """`message` (an English msgid with {placeholders}) in `language`, filled in, Korean particles settled."""
    template = gettext(language, message)
    return particles(template, **values).format(**values) if values else template


def localized(source: Mapping[str, Any] | object, field: str, language: str, *fallbacks: str) -> str:
    """The `field` of an object or mapping in `language` (`<field>_<language>`); if that is empty, in the
    first fallback language that has it (pass the city's default language), else the plain `field`."""
    get = source.get if isinstance(source, Mapping) else (lambda name: getattr(source, name, None))
    for lang in (language, *fallbacks):
        value = get(f"{field}_{lang}")
        if value:
            return str(value)
    plain = get(field)
    if isinstance(plain, str) and plain:
        return plain
    # Last, any language it is kept in: a name in another language beats no name at all.
    # An object's fields: its own, and those its class declares (a table's columns, loaded or not).
    keys = source.keys() if isinstance(source, Mapping) else {*getattr(source, "__dict__", ()), *dir(type(source))}
    for key in sorted(k for k in keys if isinstance(k, str) and k.startswith(f"{field}_")):
        value = get(key)
        if isinstance(value, str) and value and _LANGUAGE_SUFFIX.fullmatch(key[len(field) + 1 :]):
            return value
    return ""


_LANGUAGE_SUFFIX = re.compile(r"[a-z]{2,3}")


def language_name(code: str) -> str:
    """A language's name in itself (한국어, English), as a language switcher shows it."""
    try:
        return Locale.parse(code).display_name or code
    except (ValueError, UnknownLocaleError):
        return code


def by_quality(header: str) -> list[str]:
    """The values of an HTTP list header with q= weights (Accept, Accept-Language), best first: by quality,
    then order; those with q=0 (or an unreadable q) left out."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        value, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, given = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(given)
                except ValueError:
                    quality = 0.0
        if value.strip() and quality > 0:
            ranked.append((-quality, i, value.strip()))
    return [value for _, _, value in sorted(ranked)]


def negotiate(accept_language: str, languages: Iterable[str]) -> str | None:
    """The first language of an Accept-Language header (by quality, then order) among `languages`."""
    offered = tuple(languages)
    codes = (tag.replace("_", "-").split("-")[0].lower() for tag in by_quality(accept_language))
    return next((code for code in codes if code in offered), None)


def pick(candidates: Iterable[str | None], languages: Iterable[str]) -> str | None:
    """The first candidate (a code like "en" or a tag like "en-GB") naming one of `languages`."""
    offered = tuple(languages)
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            code = candidate.strip().replace("_", "-").split("-")[0].lower()
            if code in offered:
                return code
    return None


# --- Korean particles ------------------------------------------------------------------------------------
#
# A Korean particle depends on whether the word before it ends in a consonant (받침). Translations write
# the usual dictionary pair — 이(가), 을(를), 은(는), 과(와), (으)로, (이)라 — and `particles()` keeps the one
# form that fits what will stand before it once a name or number is filled in.

_PAIRS = {
    "이(가)": ("이", "가"),
    "을(를)": ("을", "를"),
    "은(는)": ("은", "는"),
    "과(와)": ("과", "와"),
    "(으)로": ("으로", "로"),
    "(이)라": ("이라", "라"),
    "(이)나": ("이나", "나"),
}
_PAIR = re.compile("|".join(re.escape(p) for p in _PAIRS))
_CLOSERS = "'\"’”)]」』>"
# How a digit is read (Sino-Korean): its last sound's final consonant, 0 for none, 8 for ㄹ.
_DIGIT_FINAL = {"0": 21, "1": 8, "2": 0, "3": 16, "4": 0, "5": 0, "6": 1, "7": 8, "8": 8, "9": 0}
_RIEUL = 8


def final_consonant(word: str) -> int | None:
    """The final consonant of how `word` ends when read aloud: 0 for none, the jongseong index (1–27)
    otherwise, None when it cannot be told (a symbol, another script)."""
    word = word.rstrip().rstrip(_CLOSERS).rstrip()
    if not word:
        return None
    last = word[-1]
    if "가" <= last <= "힣":
        return (ord(last) - ord("가")) % 28
    if last.isascii() and last.isalpha():
        return _latin_final(word)
    return _DIGIT_FINAL.get(last)


# Latin letters as Korean reads them (usernames, codes, acronyms in a sentence): an acronym by its letters'
# names (CCTV → 씨씨티브이, SOS → 에스오에스; L 엘, M 엠, N 엔, R 알 end in a consonant), a word by the usual
# loanword rule (admin → 어드민, parking → 파킹, email → 이메일; a final r is a vowel: operator → 오퍼레이터).
_LETTER_NAME_FINAL = {"L": _RIEUL, "M": 16, "N": 4, "R": _RIEUL}
_WORD_FINAL = {"l": _RIEUL, "m": 16, "n": 4}
_NG = 21


def _latin_final(word: str) -> int:
    letters = re.search(r"[A-Za-z]+$", word).group()
    if letters.isupper():
        return _LETTER_NAME_FINAL.get(letters[-1], 0)
    letters = letters.lower()
    return _NG if letters.endswith("ng") else _WORD_FINAL.get(letters[-1], 0)


def particle(word: str, pair: str) -> str:
    """`word` followed by the form of `pair` (e.g. "을(를)") that fits it; the pair as written if unknown."""
    return word + _form(word, pair)


def _form(before: str, pair: str) -> str:
    final = final_consonant(before)
    if final is None:
        return pair
    with_consonant, without = _PAIRS[pair]
    if pair == "(으)로":  # ㄹ takes 로 as a vowel does
        return without if final in (0, _RIEUL) else with_consonant
    return with_consonant if final else without


def particles(template: str, **values: Any) -> str:
    """`template` with each particle pair settled by what stands before it once `values` are filled in (a
    pair after a space stays as written). Only the template's own pairs are read: a value that happens to
    contain one is filled in untouched."""
    out, last = [], 0
    for m in _PAIR.finditer(template):
        before = template[: m.start()]
        out.append(template[last : m.start()])
        last = m.end()
        if not before or before[-1].isspace():
            out.append(m.group())
            continue
        word = before
        bare = before.rstrip(_CLOSERS)
        if bare.endswith("}") and "{" in bare:
            # A placeholder: its value, rendered as the message will render it, decides.
            word = "{" + bare[bare.rindex("{") + 1 :]
            try:
                word = word.format(**values)
            except (KeyError, IndexError, ValueError):
                word = ""
        out.append(_form(word, m.group()))
    out.append(template[last:])
    return "".join(out)


def N_(message: str) -> str:  # noqa: N802 - the name Babel's extractor looks for
    """Marks an English msgid kept in a table (translated where it is shown), so `make messages` finds it."""
    return message


def NP_(context: str, message: str) -> str:  # noqa: N802 - marked for the extractor as NP_:1c,2
    """Marks an English msgid kept in a table that is translated with a context (pgettext)."""
    return message
