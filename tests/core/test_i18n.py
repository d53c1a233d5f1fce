"""Languages: names kept per language, the catalogues (status names, messages to people), Korean particles,
and which languages are accepted — the city profile's, not a fixed pair."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from smartcity.core.city import BUNDLED, load_profile
from smartcity.core.i18n import localized, negotiate, particle, particles, pick, translate
from smartcity.core.notify import Notification
from smartcity.reports.models import Report
from tests.conftest import make_key, make_settings, make_user

# --- Korean particles --------------------------------------------------------------------------------------

HANGUL = st.integers(0xAC00, 0xD7A3).map(chr)


def has_final_consonant(syllable: str) -> bool:
    """Told apart by Unicode's own decomposition: a syllable with a final consonant decomposes into three jamo."""
    return len(unicodedata.normalize("NFD", syllable)) == 3


@given(st.text(HANGUL, min_size=1, max_size=5))
def test_subject_and_object_particles_follow_the_last_syllable(word):
    closed = has_final_consonant(word[-1])
    assert particle(word, "이(가)") == word + ("이" if closed else "가")
    assert particle(word, "을(를)") == word + ("을" if closed else "를")
    assert particle(word, "은(는)") == word + ("은" if closed else "는")


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("서울", "서울로"),  # ㄹ takes 로, as a vowel does
        ("강남구 도로과", "강남구 도로과로"),
        ("처리 중", "처리 중으로"),
        ("'처리 중'", "'처리 중'으로"),  # a closing quote is looked through
        ("종결", "종결로"),
    ],
)
def test_direction_particle(word, expected):
    assert particle(word, "(으)로") == expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (10, "10이"),
        (11, "11이"),
        (12, "12가"),
        (13, "13이"),
        (14, "14가"),
        (15, "15가"),
        (16, "16이"),
        (17, "17이"),
        (18, "18이"),
        (19, "19가"),
    ],
)
def test_numbers_are_read_aloud(number, expected):
    assert particles("#{n}이(가)", n=number).format(n=number) == "#" + expected


def test_a_particle_that_cannot_be_told_is_left_as_the_pair():
    assert particle("★", "을(를)") == "★을(를)"
    assert particle("東京", "이(가)") == "東京이(가)"


@pytest.mark.parametrize(
    ("word", "pair", "expected"),
    [
        ("admin", "이(가)", "admin이"),  # 어드민
        ("staff", "이(가)", "staff가"),  # 스태프
        ("operator", "을(를)", "operator를"),  # 오퍼레이터: a final r is read as a vowel
        ("parking", "은(는)", "parking은"),  # 파킹
        ("email", "(으)로", "email로"),  # 이메일: ㄹ takes 로
        ("demo-team", "이(가)", "demo-team이"),  # 팀
        ("CCTV", "이(가)", "CCTV가"),  # an acronym by its letters' names: 씨씨티브이
        ("OK", "을(를)", "OK를"),  # 오케이
        ("URL", "을(를)", "URL을"),  # 유알엘
        ("API", "(으)로", "API로"),  # 에이피아이
    ],
)
def test_latin_words_are_read_as_korean_reads_them(word, pair, expected):
    assert particle(word, pair) == expected


def test_a_value_is_filled_in_untouched_even_if_it_holds_a_pair():
    title = "사람이(가) 많음"
    assert particles("'{title}' 신고가 {unit}(으)로", title=title, unit="서울") == "'{title}' 신고가 {unit}로"
    assert translate(
        "ko", "An update on your report '{title}':\n{text}\n{url}", title=title, text="t", url="u"
    ).startswith(f"'{title}' 신고에")


# --- names kept per language -------------------------------------------------------------------------------


class Row:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def test_localized_reads_the_language_then_the_fallback_then_any():
    row = Row(name_ko="강남구", name_en="Gangnam-gu")
    assert localized(row, "name", "en") == "Gangnam-gu"
    assert localized(row, "name", "ko") == "강남구"
    assert localized(row, "name", "ja", "ko") == "강남구"  # the city's default language given as fallback
    assert localized({"title_ko": "", "title_en": "Sidewalks"}, "title", "ko") == "Sidewalks"  # any beats none
    assert localized({"description": "plain"}, "description", "ko") == "plain"
    assert localized(None, "name", "ko") == ""


def test_language_negotiation_keeps_to_the_offered_languages():
    assert negotiate("fr-CH, fr;q=0.9, en;q=0.8, ko;q=0.7", ("ko", "en")) == "en"
    assert negotiate("ko;q=0.2, en;q=0.9", ("ko", "en")) == "en"
    assert negotiate("de, fr", ("ko", "en")) is None
    assert pick(["", "en-GB"], ("ko", "en")) == "en"
    assert pick(["fr"], ("ko", "en")) is None


# --- the catalogues through the platform -------------------------------------------------------------------


def expected_subject_particle(report_id: int) -> str:
    # The last digit read in Sino-Korean: 영 일 이 삼 사 오 육 칠 팔 구; the vowel endings take 가.
    return "가" if str(report_id)[-1] in "2459" else "이"


def test_messages_to_a_reporter_are_whole_korean_sentences(client, db):
    make_user(db, "roadie", "staff", department="11020-roads")
    key = make_key(db, "roadie")
    ids = []
    for _ in range(2):  # two reports: consecutive numbers, so both particle forms are likely to be met
        answer = client.post(
            "/api/reports",
            json={
                "category": "roads-pothole",
                "lat": 37.5665,
                "lon": 126.978,
                "title": "패인 도로",
                "attributes": {"size": "large"},
                "contact": {"email": "kim@example.org"},
            },
        )
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["report"]["id"])
    moved = client.post(
        f"/api/reports/{ids[0]}/transition",
        headers={"X-API-Key": key},
        json={"status": "in_progress", "text": "보수 예정"},
    )
    assert moved.status_code == 200, moved.text
    with db.session() as s:
        mail = {(m.ref, m.topic): m for m in s.scalars(select(Notification))}
        units = {r.id: r.unit.name_ko for r in s.scalars(select(Report))}
    city = load_profile("seoul").name_ko
    for rid in ids:
        received = mail[(f"report:{rid}", "report.received")]
        assert received.subject == f"[{city}] 신고 #{rid}{expected_subject_particle(rid)} 접수되었습니다"
        unit = units[rid]
        towards = (
            "로"
            if not has_final_consonant(unit[-1]) or unicodedata.normalize("NFD", unit[-1])[-1] == "\u11af"
            else "으로"
        )  # ᆯ (ㄹ as a final consonant) takes 로
        assert f"'패인 도로' 신고가 접수되어 {unit}{towards} 전달되었습니다" in received.body
    status = mail[(f"report:{ids[0]}", "report.status")]
    assert status.subject == f"[{city}] 신고 #{ids[0]}: 처리 중"  # the status name from the catalogue
    assert "처리 상태가 '처리 중'으로 바뀌었습니다" in status.body and "(으)" not in status.body


def test_status_names_follow_the_page_language(client):
    assert "처리 중" in client.get("/reports?lang=ko").text
    english = client.get("/reports?lang=en").text
    assert "In progress" in english and "처리 중" not in english


# --- the profile's languages decide ------------------------------------------------------------------------


@pytest.fixture
def trilingual(db, tmp_path):
    """An app whose city offers English first, then Korean and Japanese."""
    from fastapi.testclient import TestClient

    from smartcity.app import create_app

    text = (BUNDLED / "seoul.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^language = "ko"$', 'language = "en"', text)
    text = re.sub(r"(?m)^languages = .*$", 'languages = ["en", "ko", "ja"]', text)
    profile = Path(tmp_path / "trilingual.toml")
    profile.write_text(text, encoding="utf-8")
    with TestClient(create_app(make_settings(db.url, tmp_path, city=str(profile)), db)) as client:
        yield client


def test_the_language_switcher_offers_the_profiles_languages(trilingual):
    page = trilingual.get("/").text
    links = dict(re.findall(r'class="lang" href="/lang/(\w+)\?[^"]*"[^>]*>([^<]+)</a>', page))
    assert links == {"ko": "한국어", "ja": "日本語"}  # English is the page's language: not offered again
    chosen = trilingual.get("/lang/ja", follow_redirects=False)
    assert chosen.status_code == 303 and chosen.cookies.get("lang") == "ja"
    refused = trilingual.get("/lang/fr", follow_redirects=False)
    assert refused.status_code == 303 and refused.cookies.get("lang") is None


def test_an_unknown_language_gets_the_citys_default_names(client):
    features = client.get("/api/geo/districts.geojson?lang=fr").json()["features"]
    assert features and all(f["properties"]["name"] == f["properties"]["name_ko"] for f in features)
    english = client.get("/api/geo/districts.geojson?lang=en").json()["features"]
    assert all(f["properties"]["name"] == f["properties"]["name_en"] for f in english)


def test_a_report_keeps_any_language_the_city_offers(trilingual, db):
    answer = trilingual.post(
        "/api/reports?lang=ja",
        json={
            "category": "roads-pothole",
            "lat": 37.5665,
            "lon": 126.978,
            "title": "pothole",
            "attributes": {"size": "large"},
            "contact": {"email": "kim@example.org"},
        },
    )
    assert answer.status_code == 201, answer.text
    with db.session() as s:
        report = s.get(Report, answer.json()["report"]["id"])
        assert report.language == "ja"
        mail = s.scalars(select(Notification).where(Notification.ref == f"report:{report.id}")).one()
    assert mail.subject.endswith(f"Report #{report.id} received")  # no Japanese catalogue: the English text


def test_open311_weighs_accept_language(client):
    english = client.get("/open311/v2/discovery.json", headers={"Accept-Language": "ko;q=0.1, en;q=0.9"}).json()
    assert "Community Mapping" in english["contact"]
    korean = client.get("/open311/v2/discovery.json", headers={"Accept-Language": "fr, ko-KR;q=0.8"}).json()
    assert "커뮤니티 매핑" in korean["contact"]
