"""The city's gazetteer: named places (stations, stops, offices, landmarks, districts, neighbourhoods), place
search and reverse geocoding, behind a `Geocoder` a deployment may replace (`SMARTCITY_GEOCODER`).

The built-in geocoder answers from memory: an index built once per process from the `places` table, the
city's well-known places (cities/<city>.places.toml, facts kept in the package) and the districts and
neighbourhoods of the geo index (read from there, not copied), rebuilt on `places.changed` and whenever the
geo index is rebuilt. Search keys are Hangul decomposed into jamo (so "강ㄴ", "간" and "강남" all prefix
"강남역", and one wrong jamo still matches) and romanised names lower-cased without spaces.
"""

from __future__ import annotations

import bisect
import importlib
import math
import re
import threading
import tomllib
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy import Float, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from smartcity.core.city import BUNDLED, CityProfile
from smartcity.core.context import AppContext, Slot
from smartcity.core.db import Base
from smartcity.core.errors import InvalidInput
from smartcity.core.geo import Area, GeoIndex, LocalPlane, geo_index
from smartcity.core.i18n import localized, translate

# What the reverse look-up names: the nearest place within this distance, else only the 동 and 구.
NEAR_M = 800.0
# Kinds ranked first when several names match equally: what a citizen most likely means.
KIND_RANK = {
    "landmark": 0,
    "subway_station": 1,
    "district_office": 1,
    "district": 2,
    "neighbourhood": 3,
    "campaign": 4,
    "asset": 5,
    "bus_stop": 6,
}
# How many keys a prefix search reads at most (a letter or two matches thousands of stops), and how long a
# query the one-edit search takes (longer names are found by their prefix).
PREFIX_SCAN = 1000
FUZZY_LETTERS = 40
# Areas and a module's things (a camera, an access point) are searched by name, but a point is never "near"
# a whole district or a camera, and they are not the map's labels.
AREA_KINDS = frozenset({"district", "neighbourhood"})
NOT_LANDMARKS = AREA_KINDS | {"asset"}


class Place(Base):
    """A named point of the city's gazetteer, imported from an official list (bus stops, stations…)."""

    __tablename__ = "places"
    __table_args__ = (UniqueConstraint("kind", "ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    ref: Mapped[str] = mapped_column(String(200))  # the list's own id (a stop's NODE_ID), unique per kind
    name_ko: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    district_code: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    neighbourhood_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    source: Mapped[str] = mapped_column(String(200), default="")
    search_key: Mapped[str] = mapped_column(Text, default="")  # see search_keys(); kept for SQL look-ups


# --- Hangul: jamo keys and romanisation ----------------------------------------------------------

_S0, _V_COUNT, _T_COUNT = 0xAC00, 21, 28
_LEADS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"


def _letters(spaced: str) -> list[str]:
    return spaced.split()


# Compound vowels and final clusters are split into the letters typed for them: half-typed text ("호" on the
# way to "화", "갈" on the way to "갈비"/"가리") then stays a prefix of the full name.
_VOWELS = _letters("ㅏ ㅐ ㅑ ㅒ ㅓ ㅔ ㅕ ㅖ ㅗ ㅗㅏ ㅗㅐ ㅗㅣ ㅛ ㅜ ㅜㅓ ㅜㅔ ㅜㅣ ㅠ ㅡ ㅡㅣ ㅣ")
_TAILS = [
    "",
    *_letters("ㄱ ㄲ ㄱㅅ ㄴ ㄴㅈ ㄴㅎ ㄷ ㄹ ㄹㄱ ㄹㅁ ㄹㅂ ㄹㅅ ㄹㅌ ㄹㅍ ㄹㅎ ㅁ ㅂ ㅂㅅ ㅅ ㅆ ㅇ ㅈ ㅊ ㅋ ㅌ ㅍ ㅎ"),
]
_COMPAT_SPLIT = dict(zip("ㅘㅙㅚㅝㅞㅟㅢ", _letters("ㅗㅏ ㅗㅐ ㅗㅣ ㅜㅓ ㅜㅔ ㅜㅣ ㅡㅣ"), strict=True))
_COMPAT_SPLIT.update(zip("ㄳㄵㄶㄺㄻㄼㄽㄾㄿㅀㅄ", [x for x in _TAILS if len(x) == 2], strict=True))
# Revised Romanization of Korean (2000), letter by letter; enough for a readable romanised name.
_R_LEADS = _letters("g kk n d tt r m b pp s ss - j jj ch k t p h")
_R_LEADS[11] = ""  # ㅇ is silent as an initial
_R_VOWELS = _letters("a ae ya yae eo e yeo ye o wa wae oe yo u wo we wi yu eu ui i")
_R_TAILS = ["", *_letters("k k k n n n t l k m l l l p l m p p t t ng t t k t p t")]
# A final consonant before a silent ㅇ is carried over and read as the next syllable's initial, as spoken
# (신촌역 → Sinchonyeok, 서울역 → Seouryeok).
_R_CARRIED = {1: "g", 4: "n", 7: "d", 8: "r", 16: "m", 17: "b", 19: "s", 22: "j", 23: "ch", 25: "t", 26: "p"}
_SEPARATORS = re.compile(r"[\s.·,/()\[\]_\-]+")


def _syllable(ch: str) -> tuple[int, int, int] | None:
    code = ord(ch) - _S0
    if 0 <= code < 19 * _V_COUNT * _T_COUNT:
        return code // (_V_COUNT * _T_COUNT), (code % (_V_COUNT * _T_COUNT)) // _T_COUNT, code % _T_COUNT
    return None


def search_key(text: str) -> str:
    """The form names and queries are compared in: Hangul as jamo, letters lower-cased, digits kept, every
    space and punctuation mark dropped."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", text).casefold():
        parts = _syllable(ch)
        if parts:
            lead, vowel, tail = parts
            out.append(_LEADS[lead] + _VOWELS[vowel] + _TAILS[tail])
        elif ch in _COMPAT_SPLIT:
            out.append(_COMPAT_SPLIT[ch])
        elif ch.isalnum() or "\u3131" <= ch <= "\u318e":
            out.append(ch)
    return "".join(out)


def romanise(text: str) -> str:
    """Hangul in Revised Romanization (without its assimilation rules), each word capitalised."""
    words = []
    for word in text.split():
        out: list[str] = []
        chars = list(word)
        for i, ch in enumerate(chars):
            parts = _syllable(ch)
            if not parts:
                out.append(ch)
                continue
            lead, vowel, tail = parts
            previous = _syllable(chars[i - 1]) if i else None
            if lead == 11 and previous and previous[2] in _R_CARRIED:
                out.append(_R_CARRIED[previous[2]])  # the carried final stands for the silent ㅇ
            elif lead == 5 and previous and previous[2] in (4, 8):
                out.append("l")  # ㄹㄹ → ll
            else:
                out.append(_R_LEADS[lead])
            out.append(_R_VOWELS[vowel])
            following = _syllable(chars[i + 1]) if i + 1 < len(chars) else None
            if tail == 4 and following and following[0] == 5:
                out.append("l")  # ㄴㄹ is said ㄹㄹ (선릉 → Seolleung)
            elif not (tail in _R_CARRIED and following and following[0] == 11):
                out.append(_R_TAILS[tail])
        romanised = "".join(out)
        words.append(romanised[:1].upper() + romanised[1:])
    return " ".join(words)


def keys_of(*names: str) -> set[str]:
    """Every key a place is found by: each name whole, and from each of its words on (so "역삼" finds
    "강남역.역삼역방면" and "Station" finds nothing useful only when typed whole)."""
    keys = set()
    for name in names:
        if not name:
            continue
        words = [w for w in _SEPARATORS.split(name) if w]
        for i in range(len(words)):
            key = search_key("".join(words[i:]))
            if key:
                keys.add(key)
    return keys


# --- what a search finds ------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaceHit:
    """A place as a search or a reverse look-up returns it."""

    kind: str
    name_ko: str
    name_en: str
    lat: float
    lon: float
    district_code: str | None = None
    neighbourhood_code: str | None = None
    source: str = ""

    def name(self, language: str) -> str:
        return localized(self, "name", language, "ko")

    def as_dict(self, language: str) -> dict:
        return {
            "kind": self.kind,
            "name": self.name(language),
            "name_ko": self.name_ko,
            "name_en": self.name_en,
            "lat": round(self.lat, 6),
            "lon": round(self.lon, 6),
            "district_code": self.district_code,
            "neighbourhood_code": self.neighbourhood_code,
        }


@dataclass(frozen=True)
class Nearby:
    """Where a point is, in words: the nearest place (if one is close), its 동 and its 구."""

    lat: float
    lon: float
    place: PlaceHit | None
    distance_m: float | None
    neighbourhood: Area | None
    district: Area | None

    def parts(self, language: str) -> list[str]:
        """ "near <place>", "<동>", "<구>": what is known, in `language`."""
        out = []
        if self.place:
            out.append(translate(language, "near {place}", place=self.place.name(language)))
        for area in (self.neighbourhood, self.district):
            if area:
                out.append(area.name(language, "ko"))
        return out

    def text(self, language: str) -> str:
        return ", ".join(self.parts(language))

    def as_dict(self, language: str) -> dict:
        def area(a: Area | None) -> dict | None:
            return {"code": a.code, "name": a.name(language, "ko")} if a else None

        return {
            "lat": self.lat,
            "lon": self.lon,
            "text": self.text(language),
            "parts": self.parts(language),
            "place": self.place.as_dict(language) if self.place else None,
            "distance_m": round(self.distance_m) if self.distance_m is not None else None,
            "neighbourhood": area(self.neighbourhood),
            "district": area(self.district),
        }


class Geocoder(Protocol):
    """Place search and reverse geocoding; `SMARTCITY_GEOCODER` names the class ("package.module:Class",
    built with the app's context). The built-in one is `Gazetteer`; another may ask an external service."""

    def search(
        self, text: str, language: str, near: tuple[float, float] | None = None, limit: int = 10
    ) -> list[PlaceHit]: ...

    def reverse(self, lat: float, lon: float) -> Nearby: ...


# --- the in-memory index ------------------------------------------------------------------------


class PlaceIndex:
    """Every searchable place in memory: sorted keys for prefix search, coordinates on a plane for the
    nearest place."""

    def __init__(self, places: list[PlaceHit], geo: GeoIndex, center: tuple[float, float]):
        self.places = places
        self.geo = geo
        pairs = sorted((key, i) for i, p in enumerate(places) for key in keys_of(p.name_ko, p.name_en))
        self._keys = [k for k, _ in pairs]
        self._owners = [i for _, i in pairs]
        # The keys' first letters as a matrix of code points (0 past a key's end): the one-edit search
        # compares a query with every candidate key at once.
        self._letters = np.zeros((len(pairs), FUZZY_LETTERS + 1), dtype=np.uint32)
        for row, key in enumerate(self._keys):
            head = key[: FUZZY_LETTERS + 1]
            self._letters[row, : len(head)] = [ord(c) for c in head]
        self._whole = [{search_key(p.name_ko), search_key(p.name_en)} for p in places]
        self.plane = LocalPlane(center)
        pointlike = [i for i, p in enumerate(places) if p.kind not in NOT_LANDMARKS]
        self._near_ids = np.array(pointlike, dtype=np.int64)
        lats = np.array([places[i].lat for i in pointlike], dtype=float)
        lons = np.array([places[i].lon for i in pointlike], dtype=float)
        self._x = (lons - self.plane.lon0) * self.plane.kx
        self._y = (lats - self.plane.lat0) * self.plane.ky

    def __len__(self) -> int:
        return len(self.places)

    def _prefixed(self, query: str) -> Iterable[int]:
        at = bisect.bisect_left(self._keys, query)
        end = min(len(self._keys), at + PREFIX_SCAN)  # a letter or two matches thousands: enough to rank
        while at < end and self._keys[at].startswith(query):
            yield self._owners[at]
            at += 1

    def _near_misses(self, query: str) -> Iterable[int]:
        """Keys that have a prefix one edit (a wrong, missing or extra letter) away from `query`, among the
        keys that start with its first letter (a wrong first letter is not forgiven: it keeps this fast)."""
        n = len(query)
        if n > FUZZY_LETTERS:
            return []
        lo = bisect.bisect_left(self._keys, query[0])
        hi = bisect.bisect_left(self._keys, query[0] + "\U0010ffff")
        keys = self._letters[lo:hi]
        q = np.array([ord(c) for c in query], dtype=np.uint32)
        same = keys[:, :n] == q  # letter j of the key is letter j of the query
        # A wrong letter: one difference in the first n.
        hit = same.sum(axis=1) == n - 1
        # pre[:, j]: the first j letters agree (j = 0..n).
        pre = np.concatenate([np.ones((len(keys), 1), bool), np.cumprod(same, axis=1, dtype=bool)], axis=1)
        # A letter left out of the query: key = q[:j] + x + q[j:] for some j.
        shifted = keys[:, 1 : n + 1] == q  # key[j+1] == q[j]
        after = np.flip(np.cumprod(np.flip(shifted, axis=1), axis=1, dtype=bool), axis=1)  # key[j+1:n+1] == q[j:]
        after = np.concatenate([after, np.ones((len(keys), 1), bool)], axis=1)
        hit |= (pre & after).any(axis=1) & (keys[:, n] != 0)
        # A letter too many in the query: key[:n-1] = q[:j] + q[j+1:] for some j.
        back = keys[:, : n - 1] == q[1:]  # key[j] == q[j+1]
        tail = np.flip(np.cumprod(np.flip(back, axis=1), axis=1, dtype=bool), axis=1)
        tail = np.concatenate([tail, np.ones((len(keys), 1), bool)], axis=1)  # key[j:n-1] == q[j+1:]
        hit |= (pre[:, :n] & tail).any(axis=1) & (keys[:, n - 2] != 0 if n >= 2 else True)
        return [self._owners[lo + int(r)] for r in np.flatnonzero(hit)]

    def search(self, text: str, near: tuple[float, float] | None = None, limit: int = 10) -> list[PlaceHit]:
        query = search_key(text)
        if not query:
            return []
        found: dict[int, int] = {}  # place → how well it matched: 0 whole name, 1 a prefix, 2 one edit away
        for i in self._prefixed(query):
            found[i] = min(found.get(i, 9), 0 if query in self._whole[i] else 1)
        if len(found) < limit and len(query) >= 4:
            for i in self._near_misses(query):
                found.setdefault(i, 2)

        def rank(i: int) -> tuple:
            p = self.places[i]
            distance = 0.0 if near is None else math.hypot(*self._offset(p.lat, p.lon, near))
            return (found[i], KIND_RANK.get(p.kind, 7), distance, len(p.name_ko), p.name_ko)

        hits: list[PlaceHit] = []
        seen: set[tuple] = set()
        for i in sorted(found, key=rank):
            p = self.places[i]
            # One answer per name, kind and district: a station's lines, the stops on both sides of a road.
            same = (p.kind, p.name_ko.split(" (")[0], p.district_code)
            if same in seen:
                continue
            seen.add(same)
            hits.append(p)
            if len(hits) == limit:
                break
        return hits

    def within(self, box: tuple[float, float, float, float], limit: int = 100) -> list[PlaceHit]:
        """The named points inside `box` (west, south, east, north), the most telling kinds first: the map's
        label layer."""
        west, south, east, north = box
        inside = [
            p
            for p in (self.places[int(i)] for i in self._near_ids)
            if west <= p.lon <= east and south <= p.lat <= north
        ]
        inside.sort(key=lambda p: (KIND_RANK.get(p.kind, 7), len(p.name_ko)))
        hits, seen = [], set()
        for p in inside:
            if (p.kind, p.name_ko, p.district_code) not in seen:
                seen.add((p.kind, p.name_ko, p.district_code))
                hits.append(p)
            if len(hits) == limit:
                break
        return hits

    def _offset(self, lat: float, lon: float, near: tuple[float, float]) -> tuple[float, float]:
        return (lon - near[1]) * self.plane.kx, (lat - near[0]) * self.plane.ky

    def nearest(self, lat: float, lon: float, within_m: float = NEAR_M) -> tuple[PlaceHit, float] | None:
        if not len(self._near_ids):
            return None
        x, y = self.plane.xy(lat, lon)
        d2 = (self._x - x) ** 2 + (self._y - y) ** 2
        best = int(np.argmin(d2))
        distance = math.sqrt(float(d2[best]))
        if distance > within_m:
            return None
        return self.places[int(self._near_ids[best])], distance


def well_known(profile: CityProfile) -> list[PlaceHit]:
    """The city's well-known places, kept as facts beside its profile (cities/<city>.places.toml)."""
    path = BUNDLED / f"{profile.key}.places.toml"
    if not path.exists():
        return []
    rows = tomllib.loads(path.read_text(encoding="utf-8")).get("places", [])
    return [PlaceHit(kind, ko, en, float(lat), float(lon), source=path.name) for kind, ko, en, lat, lon in rows]


def _build_index(context: AppContext, geo: GeoIndex) -> PlaceIndex:
    places: list[PlaceHit] = []
    for p in well_known(context.profile):
        district = geo.district_at(p.lat, p.lon)
        hood = geo.neighbourhood_at(p.lat, p.lon)
        places.append(
            PlaceHit(
                p.kind,
                p.name_ko,
                p.name_en,
                p.lat,
                p.lon,
                district.code if district else None,
                hood.code if hood else None,
                p.source,
            )
        )
    for area, lat, lon in geo.area_points():
        kind = "neighbourhood" if area.district_code else "district"
        hood_code = area.code if kind == "neighbourhood" else None
        places.append(
            PlaceHit(kind, area.name_ko, area.name_en, lat, lon, area.district_code or area.code, hood_code, "geo")
        )
    with context.db.session() as s:
        rows = s.execute(
            select(
                Place.kind,
                Place.name_ko,
                Place.name_en,
                Place.lat,
                Place.lon,
                Place.district_code,
                Place.neighbourhood_code,
                Place.source,
            )
        )
        places.extend(PlaceHit(*row) for row in rows)
    for read in MODULE_SOURCES.get(context.db):
        places.extend(read(context))
    return PlaceIndex(places, geo, context.profile.center)


class _Built:
    """The slot's holder of the index: built outside the context's lock (building reads the geo index, a
    slot of its own) and again when the geo index it was built on was replaced."""

    def __init__(self, context: AppContext):
        self.context = context
        self.index: PlaceIndex | None = None
        self.lock = threading.Lock()


PLACE_INDEX: Slot[_Built] = Slot("places", _Built, invalidated_by="places.changed")


def _module_sources(context: AppContext) -> list[Callable[[AppContext], Iterable[PlaceHit]]]:
    """What the declared modules offer to the search (`Module.places`); the index is dropped whenever one
    of their `changed_by` events arrives (here, or on PostgreSQL from any process). Built once per context."""
    from smartcity.core.module import resolve

    readers = []
    for m in context.modules:
        for source in m.places:
            readers.append(resolve(source.read))
            context.db.events.on(source.changed_by, lambda _event: context.slots.pop(PLACE_INDEX, None))
    return readers


MODULE_SOURCES: Slot[list] = Slot("places.sources", _module_sources)


def place_index(db) -> PlaceIndex:
    """The process's place index for `db`; rebuilt after `places.changed` and after the geo index was."""
    MODULE_SOURCES.get(db)  # following the modules' events before the first build
    built, geo = PLACE_INDEX.get(db), geo_index(db)
    index = built.index
    if index is None or index.geo is not geo:
        with built.lock:
            index = built.index
            if index is None or index.geo is not geo:
                index = built.index = _build_index(built.context, geo)
    return index


class Gazetteer:
    """The built-in geocoder: the city's own gazetteer, in memory."""

    def __init__(self, context: AppContext):
        self.db = context.db

    def search(
        self, text: str, language: str, near: tuple[float, float] | None = None, limit: int = 10
    ) -> list[PlaceHit]:
        return place_index(self.db).search(text, near=near, limit=limit)

    def reverse(self, lat: float, lon: float) -> Nearby:
        index = place_index(self.db)
        found = index.nearest(lat, lon)
        return Nearby(
            lat,
            lon,
            found[0] if found else None,
            found[1] if found else None,
            index.geo.neighbourhood_at(lat, lon),
            index.geo.district_at(lat, lon),
        )


def _resolve(path: str):
    module, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"cannot load {path!r}: {exc}", code="invalid_setting") from None


GEOCODER: Slot[Geocoder] = Slot("geocoder", lambda context: _resolve(context.settings.geocoder)(context))


def geocoder(db) -> Geocoder:
    """The deployment's geocoder (SMARTCITY_GEOCODER; the built-in gazetteer by default)."""
    return GEOCODER.get(db)


def place_for(db, text: str, language: str) -> PlaceHit | None:
    """The place an address text names ("강남역 10번 출구 앞"): its best match whole, else without its last
    words, one by one (a gazetteer knows the station, not the exit); None when nothing matches."""
    words = text.split()
    found = geocoder(db)
    for end in range(len(words), 0, -1):
        hits = found.search(" ".join(words[:end]), language, limit=1)
        if hits:
            return hits[0]
    return None


def describe(db, lat: float, lon: float, language: str) -> str:
    """ "near <place>, <동>, <구>" for a point, in `language` (what pages show under a report or a person)."""
    return geocoder(db).reverse(lat, lon).text(language)


__all__ = [
    "Geocoder",
    "Gazetteer",
    "Nearby",
    "Place",
    "PlaceHit",
    "PlaceIndex",
    "describe",
    "geocoder",
    "place_for",
    "place_index",
    "romanise",
    "search_key",
]
