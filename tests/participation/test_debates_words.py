"""A debate whose text holds a title of several words (a book, a drama) is found by each of its words, on both
stores, through the JSON API as a phone app asks. The analyser once read such a title as one token with its
spaces and particles inside (kiwi's multi-word proper-noun dictionary: '해리 포터와 마법사의 돌'), so '마법사'
never found it; that dictionary was also most of the analyser's load, which the first search of a process paid
(past the 10 s a client waits, under load: the OpenAPI fuzz's timeout)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from smartcity.app import create_app
from smartcity.core.words import tokens
from tests.conftest import make_key, make_settings, make_user

API = "/api/participation/debates"
READING = {
    "title": "도서관에서 해리 포터와 마법사의 돌을 함께 읽어요",
    "description": "구립도서관 어린이실에서 토요일마다 한 장씩 읽는 모임을 열면 어떨까요?",
    "tags": ["독서"],
}


def test_each_word_of_a_title_of_several_words_finds_the_debate(db, db_url, tmp_path):
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False), db)
    make_user(db, "kim", "citizen")
    with TestClient(app) as client:
        made = client.post(API, json=READING, headers={"X-API-Key": make_key(db, "kim")})
        assert made.status_code == 201, made.text
        for q in ("마법사", "포터가", "해리", "마법사의 돌"):
            answer = client.get(API, params={"q": q})
            assert answer.status_code == 200, answer.text
            assert [d["id"] for d in answer.json()["debates"]] == [made.json()["id"]], q


def test_no_search_word_holds_a_space():
    said = "이태원 클라쓰 촬영지 주변 소음 대책, 해리 포터와 마법사의 돌 상영회"
    assert [word for word in tokens(said) if " " in word] == []
