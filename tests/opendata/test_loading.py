"""Loading CSV and XLSX files into typed tables: types over the whole file, late bad values reported and kept,
Korean encodings, broken quoting, versions with their diff, all-or-nothing publication; the real, defective
Seoul files where they are found."""

from __future__ import annotations

import io
import json
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from smartcity.core import audit
from smartcity.core.errors import InvalidInput
from smartcity.opendata import loading
from smartcity.opendata.models import Resource, Version
from tests.conftest import seoul_data
from tests.helpers import run_cli
from tests.opendata.helpers import publish, stored_rows


def _csv(header: str, lines: list[str], encoding: str = "utf-8") -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode(encoding)


def test_a_bad_value_at_row_5000_is_reported_with_its_line_and_the_load_goes_on(db):
    lines = [f"{n},{n * 1.5},2024-01-{n % 28 + 1:02d},구{n % 7}" for n in range(1, 5000)]
    lines.append("12a,7.5,2024-02-30,끝")  # data row 5,000 is line 5,001: neither an integer nor a date
    done = publish(db, "late-values", _csv("번호,값,날짜,이름", lines), "late.csv")
    assert [(c["id"], c["type"]) for c in done.columns] == [
        ("번호", "integer"),
        ("값", "float"),
        ("날짜", "date"),
        ("이름", "text"),
    ]
    assert done.rows == 5000 and done.problem_count == 2
    assert [(p["line"], p["column"], p["value"]) for p in done.problems] == [
        (5001, "번호", "12a"),
        (5001, "날짜", "2024-02-30"),
    ]
    rows = stored_rows(db, done.resource_id)
    assert len(rows) == 5000
    assert rows[0]["번호"] == 1 and rows[0]["값"] == 1.5 and rows[0]["날짜"] == date(2024, 1, 2)
    last = rows[-1]
    assert last["번호"] is None and last["날짜"] is None and last["이름"] == "끝"
    # Nothing lost: the values that did not fit are kept as written.
    assert json.loads(last["_problems"]) == {"번호": "12a", "날짜": "2024-02-30"}


@pytest.mark.parametrize(
    "before",
    [
        [],  # one record a line: the file is read whole at once
        ['2,"a value over\ntwo lines"'],  # the line of each record is counted as it is read
        ["", "2,blank line above"],
    ],
)
def test_a_misfit_keeps_its_line_whichever_way_the_file_is_read(db, before):
    """Regression (speed): a file of one record a line is read in one call and a record's line is its place;
    any other file (a value over two lines, a blank line) is read line by line, and the lines stay right."""
    lines = ["1,first", *before, *[f"{n},row" for n in range(3, 40)], "x9,late"]
    data = _csv("n,label", lines)
    done = publish(db, "either-way", data, "either.csv")
    line_of_x9 = data.decode().split("\n").index("x9,late") + 1
    assert [(p["line"], p["value"]) for p in done.problems] == [(line_of_x9, "x9")]
    rows = stored_rows(db, done.resource_id)
    assert json.loads(rows[-1]["_problems"]) == {"n": "x9"} and rows[-1]["label"] == "late"
    assert [r["n"] for r in rows[:2]] == [1, 2 if before else 3]


def test_types_are_the_narrowest_that_fit_over_the_whole_file():
    values = ["1"] * 4999 + ["1.5"]  # a first-rows guess would say integer
    assert loading.infer_type(values) == "float"
    assert loading.infer_type(["true", "no", "Y", ""]) == "boolean"
    assert loading.infer_type(["0", "1", "2"]) == "integer"
    assert loading.infer_type(["06236", "06237"]) == "text"  # postcodes keep their zero
    assert loading.infer_type(["2022.1.3 10:11", "2022-01-03"]) == "datetime"
    assert loading.infer_type(["2022.1.3", "2022-01-04"]) == "date"
    assert loading.infer_type(["", None]) == "text"
    assert loading.infer_type(["a", "1", "2"]) == "text"  # a third does not fit: not a few broken values


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp949", "euc-kr"])
def test_korean_encodings_are_detected(db, encoding):
    data = _csv("자치구,설치장소,수량", ["강남구,역삼동 테헤란로 152,3", "서초구,서초동 1-1,2"], encoding)
    done = publish(db, "enc", data, "cctv.csv")
    assert done.encoding == ("cp949" if encoding in ("cp949", "euc-kr") else encoding)
    assert [c["id"] for c in done.columns] == ["자치구", "설치장소", "수량"]  # no BOM left in the first name
    rows = stored_rows(db, done.resource_id)
    assert [(r["자치구"], r["설치장소"], r["수량"]) for r in rows] == [
        ("강남구", "역삼동 테헤란로 152", 3),
        ("서초구", "서초동 1-1", 2),
    ]


def test_mixed_encodings_are_refused_with_the_line():
    data = "이름,값\n가,1\n".encode() + "나,2\n".encode("cp949") + b"\xff\xfe,3\n"
    with pytest.raises(InvalidInput, match="line 3"):
        loading.load_bytes(data, "mixed.csv")


def test_broken_quoting_is_reported_by_line_and_the_other_rows_load(db):
    data = b'name,note,n\nfirst,"fine, quoted",1\nsecond,"bad"quote,2\nthird,plain,3\nfourth,"x",4,extra\n'
    done = publish(db, "quoting", data, "q.csv")
    assert done.rows == 2
    assert [p["line"] for p in done.problems] == [3, 5]
    assert "broken quoting" in done.problems[0]["problem"]
    assert [r["name"] for r in stored_rows(db, done.resource_id)] == ["first", "third"]


def test_xlsx_cells_keep_their_types(db):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["설치일", "시각", "수량", "운영", "메모"])
    sheet.append([date(2024, 3, 1), datetime(2024, 3, 1, 9, 30), 4, True, "정상"])
    sheet.append([date(2024, 3, 2), datetime(2024, 3, 2, 18, 0), 7, False, None])
    out = io.BytesIO()
    book.save(out)
    done = publish(db, "sheet", out.getvalue(), "sheet.xlsx")
    assert [c["type"] for c in done.columns] == ["date", "datetime", "integer", "boolean", "text"]
    rows = stored_rows(db, done.resource_id)
    assert rows[1]["설치일"] == date(2024, 3, 2) and rows[1]["시각"] == datetime(2024, 3, 2, 18, 0)
    assert rows[1]["운영"] is False and rows[1]["수량"] == 7


def test_a_file_that_is_not_what_its_name_says_is_refused():
    with pytest.raises(InvalidInput, match="not an XLSX"):
        loading.load_bytes(b"a,b\n1,2\n", "data.xlsx")
    with pytest.raises(InvalidInput, match="not a text CSV"):
        loading.load_bytes(b"PK\x03\x04" + b"\x00" * 100, "data.csv")
    with pytest.raises(InvalidInput, match="only CSV, XLSX, JSON, GeoJSON and Parquet"):
        loading.load_bytes(b"%PDF-1.7", "data.pdf")


def test_a_new_version_records_rows_added_removed_and_changed_by_key(db):
    first = publish(db, "stops", _csv("id,name,riders", ["1,a,10", "2,b,20", "3,c,30"]), "stops.csv", key="id")
    second = publish(
        db, "stops", _csv("id,name,riders", ["1,a,10", "2,b,25", "4,d,40", "5,e,50"]), "stops.csv", key="id"
    )
    assert (first.version, first.added, first.removed, first.changed) == (1, 3, 0, 0)
    assert (second.version, second.added, second.removed, second.changed) == (2, 2, 1, 1)
    assert second.resource_id == first.resource_id
    with db.session() as s:
        versions = s.scalars(select(Version).order_by(Version.number)).all()
        assert [v.rows for v in versions] == [3, 4]
        # Each publication's file is kept and can be had again.
        from smartcity.opendata.publishing import version_file

        assert b"3,c,30" in version_file(s, versions[0]).read_bytes()
        assert b"5,e,50" in version_file(s, versions[1]).read_bytes()
        assert [e.action for e in audit.entries(s, object_type="opendata.resource")].count("publish") == 2


def test_without_a_key_versions_compare_whole_rows(db):
    publish(db, "bins", _csv("where,kind", ["a,일반", "b,재활용"]), "bins.csv")
    again = publish(db, "bins", _csv("where,kind", ["a,일반", "b,일반", "c,재활용"]), "bins.csv")
    assert (again.added, again.removed, again.changed) == (2, 1, 0)


def test_a_failed_publication_leaves_the_previous_version_whole(db, tmp_path):
    first = publish(db, "whole", _csv("n", [str(n) for n in range(10)]), "w.csv")
    seen = []

    def fail_midway(n: int) -> None:
        seen.append(n)
        raise RuntimeError("the disk is full")

    big = _csv("n", [str(n) for n in range(12_000)])  # several batches: the failure comes after the first
    with pytest.raises(RuntimeError):
        publish(db, "whole", big, "w.csv", progress=fail_midway)
    assert seen
    rows = stored_rows(db, first.resource_id)
    assert [r["n"] for r in rows] == list(range(10))
    with db.session() as s:
        resource = s.scalar(select(Resource).where(Resource.uid == first.resource_id))
        assert (resource.version, resource.row_count) == (1, 10)
        assert s.scalar(select(Version.number).where(Version.number == 2)) is None
    kept = list((Path(db.context.settings.var_dir) / "opendata" / first.resource_id).iterdir())
    assert [p.name for p in kept] == ["1-w.csv"]


def test_the_cli_loads_a_file_with_a_progress_bar_and_lists_problems(db_url, tmp_path):
    path = tmp_path / "counts.csv"
    lines = [f"{name},{n}" for n, name in enumerate(["강남구", "송파구", "마포구", "종로구", "중구"] * 3)]
    lines[1] = "서초구,x"  # one value in fifteen does not fit: reported, the column stays integer
    path.write_bytes(_csv("구,건수", lines, "cp949"))
    out = run_cli(db_url, "opendata", "load", str(path), "--dataset", "counts", "--title", "신고 건수")
    assert "cp949, 15 rows" in out and "건수 integer" in out
    assert "published counts/counts version 1: 15 rows (+15 -0 ~0), 1 problems" in out
    assert "line 3: 건수 'x': not a integer" in out


@pytest.mark.real_data
def test_real_dumping_records_load_with_their_broken_dates_reported(db):
    path = seoul_data("illegal_dumping_gangnam_2022.csv")
    done = publish(db, "dumping", path.read_bytes(), path.name)
    assert done.encoding == "utf-8-sig"
    types = {c["id"]: c["type"] for c in done.columns}
    assert types == {"위반쓰레기": "text", "장소": "text", "위반일시": "datetime", "lat": "float", "lng": "float"}
    assert done.rows == 28_248  # every row is kept
    assert 2_500 < done.problem_count < 2_700  # "##########" and impossible dates: about 2,600
    assert {p["column"] for p in done.problems} == {"위반일시"}
    assert any(p["value"] == "##########" for p in done.problems)
    rows = stored_rows(db, done.resource_id)
    assert rows[0]["위반일시"] == datetime(2022, 1, 3, 10, 11)
    assert sum(1 for r in rows if r["_problems"]) == done.problem_count


@pytest.mark.real_data
def test_real_safety_cctv_list_with_damaged_addresses_loads_typed(db):
    path = seoul_data("cctv_gangnam_safety.csv")
    done = publish(db, "safety-cctv", path.read_bytes(), path.name)
    types = {c["id"]: c["type"] for c in done.columns}
    assert types["위도(lat)"] == "float" and types["경도(lng)"] == "float"
    assert types["CCTV 수량"] == "integer" and types["수정 일시"] == "date"
    assert done.rows == 7007 and done.problem_count == 0
    rows = stored_rows(db, done.resource_id)
    assert any("?" in r["안심 주소(원문, 한글 손상: ?로 표시)"] for r in rows)  # kept as the source has it
