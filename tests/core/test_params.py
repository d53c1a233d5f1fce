"""The core's parameter parsers: every surface parses numbers, boxes and times with these."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartcity.core import params
from smartcity.core.errors import InvalidInput

KST = timezone(timedelta(hours=9))


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_absent_values_are_none_or_the_default(raw):
    assert params.number(raw, "radius") is None
    assert params.bbox(raw) is None
    assert params.timestamp(raw, "since") is None
    assert params.numbers(raw, 3, "near") is None
    assert params.integer(raw, "page", default=7, lo=1, hi=9) == 7


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_number_reads_back_its_text(x):
    assert params.number(repr(x), "x") == x


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e999", "abc", "1,2", True])
def test_what_is_not_a_finite_number_is_refused_naming_the_parameter(raw):
    with pytest.raises(InvalidInput, match="radius") as err:
        params.number(raw, "radius")
    assert err.value.code == "invalid_parameter"


def test_bounds_and_the_error_code_are_the_callers():
    assert params.number("5", "r", lo=0, hi=5) == 5
    with pytest.raises(InvalidInput, match="between 0 and 5") as err:
        params.number("5.01", "r", lo=0, hi=5, code="invalid_radius")
    assert err.value.code == "invalid_radius"


@pytest.mark.parametrize("raw", ["-1", "+2", "1.0", "x", "11", "0"])
def test_whole_numbers_are_digits_within_bounds(raw):
    with pytest.raises(InvalidInput, match="page"):
        params.integer(raw, "page", default=1, lo=1, hi=10)


@given(st.integers(1, 10))
def test_whole_numbers_in_bounds_are_read(n):
    assert params.integer(f" {n} ", "page", default=1, lo=1, hi=10) == n


def test_lists_of_numbers_have_their_length():
    assert params.numbers("37.5,127.0,500", 3, "near") == (37.5, 127.0, 500.0)
    for raw in ("37.5,127.0", "37.5,127.0,500,1", "a,b,c", "1,nan,2"):
        with pytest.raises(InvalidInput) as err:
            params.numbers(raw, 3, "near")
        assert err.value.code == "invalid_near"


@given(st.floats(-180, 179), st.floats(-90, 89), st.floats(0.001, 1), st.floats(0.001, 1))
def test_a_box_is_read_from_text_or_values(west, south, dx, dy):
    east, north = min(west + dx, 180), min(south + dy, 90)
    text = ",".join(repr(v) for v in (west, south, east, north))
    assert params.bbox(text) == (west, south, east, north)
    assert params.bbox([west, south, east, north]) == (west, south, east, north)


@pytest.mark.parametrize(
    "raw",
    [
        (),
        [1, 2, 3],
        "1,2,3",
        "1,2,3,4,5",
        "x,1,2,3",
        "127.1,37.5,127.0,37.6",
        "127,37.6,127.1,37.5",
        "127,37.5,127,37.6",
        "-181,0,0,1",
        "0,-91,1,0",
        "0,0,1,nan",
    ],
)
def test_bad_boxes_are_refused(raw):
    with pytest.raises(InvalidInput) as err:
        params.bbox(raw)
    assert err.value.code == "invalid_bbox"


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(KST)))
def test_a_time_reads_back_its_iso_text_even_with_its_plus_lost(when):
    text = when.isoformat()
    assert params.timestamp(text, "since") == when
    assert params.timestamp(text.replace("+", " "), "since") == when  # unencoded in a query string
    assert params.timestamp(when.astimezone(UTC).isoformat().replace("+00:00", "Z"), "since") == when


def test_a_time_without_offset_is_taken_in_the_given_zone_or_refused():
    assert params.timestamp("2024-05-01T09:30:00", "since", tz=KST) == datetime(2024, 5, 1, 0, 30, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="time zone") as err:
        params.timestamp("2024-05-01T09:30:00", "since")
    assert err.value.code == "invalid_datetime"
    assert params.iso_time("2024-05-01 09:30") == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["yesterday", "2024-13-01T00:00:00Z", "2024-05-01T25:00:00Z", "1714550400"])
def test_what_is_not_a_time_is_refused(raw):
    with pytest.raises(InvalidInput, match="since") as err:
        params.timestamp(raw, "since", code="invalid_date")
    assert err.value.code == "invalid_date"
    assert params.iso_time(raw) is None
