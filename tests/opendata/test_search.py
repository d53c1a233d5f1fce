"""Full-text search over datasets and documents, on both stores, with Korean examples where a substring
LIKE would fail or mis-rank."""

from __future__ import annotations

from sqlalchemy import func, select

from smartcity.opendata import search
from smartcity.opendata.models import SearchEntry


def put(db, kind: str, ref_id: int, title: str, body: str = "", **facets) -> None:
    with db.session() as s:
        search.index_text(s, kind, ref_id, title=title, body=body, facets=facets)
        s.commit()


def ask(db, q: str, kinds=None, **kw) -> search.Found:
    with db.session() as s:
        return search.search(s, q, kinds, **kw)


def test_tokens_split_korean_compounds_and_drop_particles():
    assert search.tokens("교통정보를 공개합니다") == ["교통", "정보", "공개"]
    assert "서울" in search.tokens("서울특별시")
    assert search.tokens("Parking Lots in Seoul") == ["parking", "lot", "in", "seoul"]


def test_a_word_inside_a_compound_matches_where_like_would_not(db):
    """LIKE '%교통 정보%' misses 교통정보 written without the space; LIKE '%미세먼지를%' misses a title with
    미세먼지 alone. Morpheme tokens match both."""
    put(db, "dataset", 1, "실시간 교통정보", "도로별 소통 현황")
    put(db, "dataset", 2, "대기오염측정소 미세먼지 자료", "시간별 측정값")
    put(db, "dataset", 3, "공공자전거 대여소", "따릉이 대여소 위치")
    assert ask(db, "교통 정보").ids() == [1]
    assert ask(db, "미세먼지를 알려주세요").ids() == []  # every token must match: 알리다 is in no entry
    assert ask(db, "미세먼지를").ids() == [2]
    assert ask(db, "오염").ids() == [2]
    assert ask(db, "자전거").ids() == [3]
    assert ask(db, "서울").total == 0


def test_a_substring_that_is_not_a_word_does_not_match(db):
    """LIKE '%사고%' finds 인사고과 (personnel evaluation) for 사고 (accident); the morphemes do not."""
    put(db, "document", 1, "인사고과 운영 지침")
    put(db, "document", 2, "교통사고 다발 지역", "사고 발생 건수")
    assert ask(db, "사고").ids() == [2]


def test_titles_rank_above_bodies_and_more_mentions_rank_higher(db):
    put(db, "dataset", 1, "도시 공원 현황", "공원 위치와 면적")
    put(db, "dataset", 2, "체육시설 현황", "근린 공원 안의 시설")
    put(db, "dataset", 3, "녹지 현황", "하천")
    found = ask(db, "공원")
    assert found.ids() == [1, 2] and found.total == 2
    assert found.hits[0].score > found.hits[1].score


def test_english_and_korean_in_one_entry(db):
    put(db, "dataset", 1, ["서울시 주차장 정보", "Seoul public parking lots"])
    put(db, "dataset", 2, ["버스 정류소", "Bus stops"])
    assert ask(db, "parking lot").ids() == [1]
    assert ask(db, "주차장").ids() == [1]
    assert ask(db, "stop").ids() == [2]


def test_kinds_filters_facets_and_paging(db):
    for i in range(1, 8):
        put(db, "dataset", i, f"교통 자료 {i}", organisation=["traffic" if i % 2 else "environment"], tags=["교통"])
    put(db, "document", 1, "교통 민원 답변")
    assert ask(db, "교통").total == 8
    assert ask(db, "교통", ["document"]).ids("document") == [1]
    found = ask(db, "교통", ["dataset"], facet_fields=["organisation", "tags"], limit=3, offset=0)
    assert found.total == 7 and len(found.hits) == 3
    assert found.facets == {"organisation": [("traffic", 4), ("environment", 3)], "tags": [("교통", 7)]}
    second = ask(db, "교통", ["dataset"], limit=3, offset=3)
    assert not set(found.ids()) & set(second.ids())
    only = ask(db, "교통", ["dataset"], filters={"organisation": ["environment"]}, facet_fields=["organisation"])
    assert sorted(only.ids()) == [2, 4, 6] and only.facets == {"organisation": [("environment", 3)]}


def test_an_empty_query_lists_every_entry_newest_first(db):
    put(db, "dataset", 1, "가")
    put(db, "dataset", 2, "나")
    found = ask(db, "", ["dataset"])
    assert found.total == 2 and found.ids() == [2, 1]


def test_replacing_and_removing_an_entry(db):
    put(db, "document", 5, "도로 공사 안내", tag=["a"])
    put(db, "document", 5, "상수도 공사 안내", tag=["b"])
    assert ask(db, "도로").total == 0
    assert ask(db, "상수도", facet_fields=["tag"]).facets == {"tag": [("b", 1)]}
    with db.session() as s:
        assert search.remove(s, "document", 5) is True
        assert search.remove(s, "document", 5) is False
        s.commit()
        assert s.scalar(select(func.count()).select_from(SearchEntry)) == 0
    assert ask(db, "공사").total == 0


def test_query_syntax_is_taken_as_words(db):
    """FTS5 and tsquery operators in a query are words to look for, never syntax (no error, no injection)."""
    put(db, "dataset", 1, "대기 질 측정")
    for q in ['" OR 1=1 --', "NEAR(대기", "대기 & !측정", "title_tokens:대기", "*"]:
        found = ask(db, q)
        assert found.total in (0, 1)
    assert ask(db, "title_tokens:대기").ids() in ([], [1])


def test_many_entries_and_a_replacement_in_one_transaction(db):
    """A catalogue refresh indexes many entries and may replace one twice in one transaction; the facets of
    the last version are the ones kept."""
    with db.session() as s:
        for i in range(1, 301):
            search.index_text(s, "dataset", i, title=f"교통 자료 {i}", facets={"tags": ["교통", f"t{i % 3}"]})
        search.index_text(s, "dataset", 7, title="교통 자료 7", facets={"tags": ["교통", "t2"]})
        search.index_text(s, "dataset", 7, title="교통 자료 7", facets={"tags": ["교통", "t2"]})
    found = ask(db, "교통", facet_fields=["tags"], limit=0)
    assert found.total == 300
    assert dict(found.facets["tags"]) == {"교통": 300, "t0": 100, "t1": 99, "t2": 101}


def test_on_sqlite_the_full_text_match_drives_the_query(sqlite_url):
    """With a kind filter SQLite's planner walked the entries by kind and ran the MATCH once per entry (about
    50 times slower at 2,000 entries); every statement a search runs must scan the FTS5 table first."""
    from sqlalchemy import event

    from smartcity.core.db import Database

    db = Database(sqlite_url)
    for i in range(1, 30):
        put(db, "dataset", i, f"교통 자료 {i}", tags=["교통"])
    ran: list[tuple[str, object]] = []
    event.listen(db.engine, "before_cursor_execute", lambda c, cur, sql, params, *a: ran.append((sql, params)))
    ask(db, "교통", ["dataset"], facet_fields=["tags"])
    matching = [(sql, params) for sql, params in ran if "MATCH" in sql]
    assert len(matching) == 1  # the count, the page and the facets come from one statement
    with db.engine.connect() as conn:
        for sql, params in matching:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
            # The steps over the FTS5 table (alias f) and the entries (alias s), in the order SQLite runs them.
            steps = [row[3] for row in plan if row[3].split()[1:2] in (["f"], ["s"])]
            assert steps and steps[0].startswith("SCAN f VIRTUAL TABLE"), plan
    db.dispose()


def test_a_search_is_one_statement_once_the_facets_are_known(db):
    """The count, the page and every facet field come from one statement; the facets of entries already read
    are counted from memory (three facet fields were three more statements over the facets table, 15 ms of a
    20 ms budget at 5,000 datasets)."""
    from sqlalchemy import event

    for i in range(1, 13):
        put(
            db,
            "dataset",
            i,
            f"교통 자료 {i}",
            tags=["교통", f"t{i % 2}"],
            organization=[f"o{i % 3}"],
            res_format=["CSV"],
        )
    fields = ["tags", "organization", "res_format"]
    first = ask(db, "교통", ["dataset"], facet_fields=fields, limit=5)
    ran: list[str] = []

    def count(conn, cursor, sql, *args) -> None:
        ran.append(sql)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        again = ask(db, "교통", ["dataset"], facet_fields=fields, limit=5)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(ran) == 1, ran
    assert again == first
    assert again.total == 12 and len(again.hits) == 5
    assert again.facets == {
        "tags": [("교통", 12), ("t0", 6), ("t1", 6)],
        "organization": [("o0", 4), ("o1", 4), ("o2", 4)],
        "res_format": [("CSV", 12)],
    }


def test_facets_follow_changes_made_elsewhere_and_forget_rolled_back_ones(db_url):
    """Facets remembered by one process are read again when another process re-indexes the entry (its
    updated_at moves); a change seen inside a transaction that is then rolled back is not kept."""
    from smartcity.core.db import Database

    here, elsewhere = Database(db_url), Database(db_url)
    try:
        put(here, "dataset", 1, "교통 자료", tags=["a"])
        put(here, "dataset", 2, "교통 통계", tags=["a"])
        assert ask(here, "교통", facet_fields=["tags"]).facets == {"tags": [("a", 2)]}
        put(elsewhere, "dataset", 2, "교통 통계", tags=["b", "c"])
        assert ask(here, "교통", facet_fields=["tags"]).facets == {"tags": [("a", 1), ("b", 1), ("c", 1)]}
        with here.session() as s:
            search.index_text(s, "dataset", 1, title="교통 자료", facets={"tags": ["z"]})
            inside = search.search(s, "교통", facet_fields=["tags"])
            assert inside.facets == {"tags": [("b", 1), ("c", 1), ("z", 1)]}
            s.rollback()
        assert ask(here, "교통", facet_fields=["tags"]).facets == {"tags": [("a", 1), ("b", 1), ("c", 1)]}
        with elsewhere.session() as s:
            search.remove(s, "dataset", 2)
            s.commit()
        assert ask(here, "교통", facet_fields=["tags"]).facets == {"tags": [("a", 1)]}
    finally:
        here.dispose()
        elsewhere.dispose()


def test_facet_limit_mincount_and_ties_by_value(db):
    for i, tags in enumerate([["x", "y"], ["y", "b"], ["a", "y"], ["b"]], 1):
        put(db, "dataset", i, "교통", tags=tags)
    assert ask(db, "교통", facet_fields=["tags"], facet_limit=2).facets == {"tags": [("y", 3), ("b", 2)]}
    assert ask(db, "교통", facet_fields=["tags"], facet_mincount=2).facets == {"tags": [("y", 3), ("b", 2)]}
    assert ask(db, "교통", facet_fields=["tags"]).facets["tags"][2:] == [("a", 1), ("x", 1)]
