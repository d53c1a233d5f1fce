"""Finding personal data in Korean administrative text before a document is published (pure functions).

`find(text, names)` returns every finding (kind, span, original, replacement), without overlaps, in text
order; `apply(text, findings)` renders the masked text; `occurrences(text, needle)` is a publisher's own mask
(a string typed or selected in the review screen).

What is found, and the rules (docs/opendata.md, "Masking"):

    rrn          resident registration number YYMMDD-GNNNNNC (dash, space or nothing between): a real date,
                 G 1–4, and the check digit: weights 2,3,4,5,6,7,8,9,2,3,4,5 over the first 12 digits,
                 check = (11 − sum mod 11) mod 10. A 13-digit number failing it is left alone — except
                 a number born on or after 2020-10-01 (G 3/4): numbers issued since October 2020 carry
                 random digits after G and no check digit, so their date alone decides.
    foreign_rrn  foreign registration number, the same shape with G 5–8; published validators disagree on
                 its check digit, so either the citizen rule or the older foreigner rule
                 ((13 − sum mod 11) mod 10) is accepted; born on or after 2020-10-01 (G 7/8) as above.
    card         14–19 digits (groups of 4, or 4-6-5/4-6-4) passing the Luhn check (13 digits are left to the
                 registration number rule: no card is issued with 13 digits today).
    email        an address: the local part is masked, the domain kept.
    phone        mobile 010/011/016/017/018/019, Seoul 02, area codes 0[3-6]x and 070, with dashes, dots,
                 spaces or nothing between, `+82` accepted; the prefix is kept.
    account      a bank account: 3 or more dash-joined digit groups of 10–14 digits in all, or 10–14 digits
                 within a few words after 계좌/은행/입금/예금주. The business registration shape 3-2-5 is left
                 alone unless a bank word is near.
    address      a street address below the road name: "테헤란로 152", "테헤란로4길 15-3, 3층 301호" keep
                 "테헤란로"/"테헤란로4길" and mask the building number and the detail; a lot-number address
                 ("역삼동 123-45") keeps the dong after a 시/구/군.
    name         each name the publisher lists, where it starts a word: the first syllable kept.
    manual       a string the publisher masks in the review screen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

# When two findings overlap the one with the stronger evidence is kept (checksums first).
KINDS = ("rrn", "foreign_rrn", "card", "email", "phone", "account", "address", "name", "manual")
_RANK = {kind: i for i, kind in enumerate(KINDS)}

_NEW_NUMBERS = date(2020, 10, 1)  # from this date RRNs are issued without a check digit
_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
_CENTURY = {"1": 1900, "2": 1900, "3": 2000, "4": 2000, "5": 1900, "6": 1900, "7": 2000, "8": 2000}
STAR = "*"
NAME_MARK = "○"


@dataclass(frozen=True)
class Finding:
    """One piece of personal data: `original` is text[start:end], shown as `replacement` once masked."""

    kind: str
    start: int
    end: int
    original: str
    replacement: str

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "original": self.original,
            "replacement": self.replacement,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Finding:
        return cls(
            str(data["kind"]), int(data["start"]), int(data["end"]), str(data["original"]), str(data["replacement"])
        )


# --- check digits -------------------------------------------------------------------------------------


def rrn_check_digit(first12: str) -> int:
    """The resident registration number's check digit for its first 12 digits."""
    total = sum(int(d) * w for d, w in zip(first12, _WEIGHTS, strict=True))
    return (11 - total % 11) % 10


def _foreign_check_digit(first12: str) -> int:
    total = sum(int(d) * w for d, w in zip(first12, _WEIGHTS, strict=True))
    return (13 - total % 11) % 10


def luhn_valid(digits: str) -> bool:
    """Whether a card number's digits pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _birth_date(digits: str) -> date | None:
    century = _CENTURY.get(digits[6])
    if century is None:
        return None
    try:
        return date(century + int(digits[0:2]), int(digits[2:4]), int(digits[4:6]))
    except ValueError:
        return None


def registration_kind(digits: str) -> str | None:
    """ "rrn" or "foreign_rrn" when 13 digits are a registration number by the rules above, else None."""
    if len(digits) != 13 or not digits.isdigit():
        return None
    born = _birth_date(digits)
    if born is None:
        return None
    foreign = digits[6] in "5678"
    check = int(digits[12])
    valid = check == rrn_check_digit(digits[:12]) or (foreign and check == _foreign_check_digit(digits[:12]))
    if not valid and born < _NEW_NUMBERS:
        return None
    return "foreign_rrn" if foreign else "rrn"


# --- the patterns ------------------------------------------------------------------------------------

_RRN = re.compile(r"(?<![\d-])(\d{6})[- ]?([1-8]\d{6})(?![\d-])")
_CARD = re.compile(
    r"(?<![\d-])(?:\d{4}([- ])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?|\d{4}([- ])\d{6}\2\d{4,5}|\d{14,19})(?![\d-])"
)
_EMAIL = re.compile(r"(?<![\w.+-])([A-Za-z0-9][A-Za-z0-9._%+-]*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})")
_PHONE = re.compile(
    r"(?<![\d+])(?:\+82[-. ]?\(?0?|\(?0)(1[016789]|2|[3-6][1-5]|70)\)?[-. ]?(\d{3,4})[-. ]?(\d{4})(?![\d-])"
)
_ACCOUNT_GROUPS = re.compile(r"(?<![\d-])\d{2,6}(?:-\d{2,7}){2,4}(?![\d-])")
_DIGIT_RUN = re.compile(r"(?<![\d-])\d{10,14}(?![\d-])")
_BANK_WORDS = re.compile(r"계좌|은행|입금|예금주|송금|환불")
_BANK_WINDOW = 20  # characters before a number in which a bank word makes it an account
_BUSINESS_NUMBER = re.compile(r"\d{3}-\d{2}-\d{5}")
# A road name ends in 로 or 길 (테헤란로, 봉은사로68길, 세종대로23번길); the particle (으)로 is not one.
# A number followed by a counter (10명, 3 건, 2024년) is a quantity, not a building.
_NOT_BUILDING = r"(?![\d-]|[ ]?[명건회개년월일원가번차시분초세곳종권장편배위%])"
_DETAIL = r"(?:(?:,[ ]?|[ ])?(?:지하[ ]?)?[A-Za-z]?\d{1,4}(?:동|층|호))"
_ROAD = re.compile(
    r"(?<![가-힣\d])([가-힣]{1,12}(?:\d{1,4}번?)?(?:로|길))[ \u00a0]+"
    r"((?:지하[ ]?)?\d{1,5}(?:-\d{1,5})?(?:" + _DETAIL + r"+|" + _NOT_BUILDING + r"))"
)
# Words ending in 로 that are adverbs or a noun with the particle 로, seen before a number in documents.
_NOT_ROADS = frozenset(
    (
        "주로",
        "새로",
        "서로",
        "바로",
        "따로",
        "별로",
        "절로",
        "날로",
        "홀로",
        "실로",
        "함부로",
        "스스로",
        "대체로",
        "실제로",
        "별도로",
        "정도로",
        "최초로",
        "전화로",
        "문서로",
        "자료로",
        "비율로",
        "차례로",
        "순서로",
        "도로",
    )
)
_LOT = re.compile(
    r"(?<=[시구군][ ])([가-힣]{1,8}\d{0,2}(?:동|리|가))[ ]+((?:산[ ]?)?\d{1,5}(?:-\d{1,5})?(?:번지)?)" + _NOT_BUILDING
)


def _star_digits(text: str) -> str:
    return "".join(STAR if ch.isdigit() else ch for ch in text)


def _registration_numbers(text: str) -> Iterable[Finding]:
    for m in _RRN.finditer(text):
        kind = registration_kind(m.group(1) + m.group(2))
        if kind is not None:
            yield Finding(kind, m.start(), m.end(), m.group(), _star_digits(m.group()))


def _cards(text: str) -> Iterable[Finding]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits) and registration_kind(digits) is None:
            yield Finding("card", m.start(), m.end(), m.group(), _star_digits(m.group()))


def _emails(text: str) -> Iterable[Finding]:
    for m in _EMAIL.finditer(text):
        yield Finding("email", m.start(), m.end(), m.group(), f"{STAR * 3}@{m.group(2)}")


def _phones(text: str) -> Iterable[Finding]:
    for m in _PHONE.finditer(text):
        # The prefix (carrier or area code) is not personal.
        shown = text[m.start() : m.start(2)] + _star_digits(text[m.start(2) : m.end()])
        yield Finding("phone", m.start(), m.end(), m.group(), shown)


def _near_bank_word(text: str, start: int) -> bool:
    return _BANK_WORDS.search(text, max(0, start - _BANK_WINDOW), start) is not None


def _accounts(text: str) -> Iterable[Finding]:
    for m in _ACCOUNT_GROUPS.finditer(text):
        digits = sum(ch.isdigit() for ch in m.group())
        if not 10 <= digits <= 14:
            continue
        if _BUSINESS_NUMBER.fullmatch(m.group()) and not _near_bank_word(text, m.start()):
            continue
        yield Finding("account", m.start(), m.end(), m.group(), _star_digits(m.group()))
    for m in _DIGIT_RUN.finditer(text):
        if _near_bank_word(text, m.start()):
            yield Finding("account", m.start(), m.end(), m.group(), _star_digits(m.group()))


def _addresses(text: str) -> Iterable[Finding]:
    for pattern in (_ROAD, _LOT):
        for m in pattern.finditer(text):
            road = m.group(1)
            if pattern is _ROAD and (road.endswith("으로") or road in _NOT_ROADS):
                continue
            detail = m.group(2)
            yield Finding("address", m.start(2), m.end(2), detail, _star_digits(detail))


def _mask_name(name: str) -> str:
    return name[0] + NAME_MARK * (len(name) - 1)


def _names(text: str, names: Iterable[str]) -> Iterable[Finding]:
    for name in {n.strip() for n in names if len(n.strip()) >= 2}:
        # Where it starts a word: a listed 이수 is not masked inside 정이수 or 나이수치.
        pattern = re.compile(r"(?<![\w])" + re.escape(name) + (r"(?![A-Za-z])" if name.isascii() else ""), re.I)
        for m in pattern.finditer(text):
            yield Finding("name", m.start(), m.end(), m.group(), _mask_name(m.group()))


def occurrences(text: str, needle: str, kind: str = "manual") -> list[Finding]:
    """Every occurrence of a string the publisher chose to mask, each masked whole."""
    needle = needle.strip()
    if not needle:
        return []
    found = []
    start = text.find(needle)
    while start >= 0:
        found.append(Finding(kind, start, start + len(needle), needle, STAR * len(needle)))
        start = text.find(needle, start + len(needle))
    return found


def resolve(findings: Iterable[Finding]) -> list[Finding]:
    """The findings in text order without overlaps: of two that overlap, the stronger kind, then the longer."""
    ordered = sorted(findings, key=lambda f: (_RANK.get(f.kind, len(KINDS)), -(f.end - f.start), f.start))
    kept: list[Finding] = []
    for f in ordered:
        if f.end > f.start and all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def find(text: str, names: Sequence[str] = ()) -> list[Finding]:
    """Every piece of personal data found in `text` (and each of `names`), in text order, without overlaps."""
    return resolve(
        [
            *_registration_numbers(text),
            *_cards(text),
            *_emails(text),
            *_phones(text),
            *_accounts(text),
            *_addresses(text),
            *_names(text, names),
        ]
    )


def apply(text: str, findings: Iterable[Finding]) -> str:
    """`text` with every finding replaced (findings that overlap an earlier one are skipped)."""
    out: list[str] = []
    at = 0
    for f in sorted(findings, key=lambda f: f.start):
        if f.start < at or text[f.start : f.end] != f.original:
            continue
        out.append(text[at : f.start])
        out.append(f.replacement)
        at = f.end
    out.append(text[at:])
    return "".join(out)


def _star_all(text: str) -> str:
    return "".join(ch if ch.isspace() or ch in "-.,@()" else STAR for ch in text)


def apply_all(text: str, findings: Iterable[Finding]) -> str:
    """`text` with every finding masked, overlaps included: findings that overlap are merged and their whole
    stretch starred (a publisher's selection across a found number hides both)."""
    groups: list[list[Finding]] = []
    for f in sorted((f for f in findings if f.end > f.start), key=lambda f: (f.start, f.end)):
        if groups and f.start < max(g.end for g in groups[-1]):
            groups[-1].append(f)
        else:
            groups.append([f])
    out: list[str] = []
    at = 0
    for group in groups:
        start, end = group[0].start, max(f.end for f in group)
        out.append(text[at:start])
        out.append(group[0].replacement if len(group) == 1 else _star_all(text[start:end]))
        at = end
    out.append(text[at:])
    return "".join(out)
