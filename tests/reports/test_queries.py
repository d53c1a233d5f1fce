"""One query builder for report search: the Open311 GET fast path (plain SQL text) and the service's search
(SQLAlchemy, which the JSON API, the pages and the exports use) find the same reports for the same filters,
drawn at random over reports stored at random places, statuses, categories, units and times."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from smartcity.core.models import Department
from smartcity.reports import service as S
from smartcity.reports.models import Report
from tests.conftest import make_key

V2 = "/open311/v2"
CITY_HALL = (37.5665, 126.9780)
CATEGORIES = ("roads-pothole", "roads-streetlight", "cleaning-illegal-dumping")
UNITS = ("11020-roads", "11020-civil")
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
STATUSES = ("open", "acknowledged", "in_progress", "fixed", "closed", "duplicate")


@pytest.fixture
def stored(client, db):
    """60 reports around City Hall; their ids."""
    key = make_key(db, scope="open311")
    r = client.post(
        f"{V2}/requests.json",
        data={
            "api_key": key,
            "service_code": "roads-pothole",
            "attribute[size]": "large",
            "description": "A template",
            "lat": str(CITY_HALL[0]),
            "long": str(CITY_HALL[1]),
        },
    )
    assert r.status_code == 201, r.text
    template = int(r.json()[0]["service_request_id"])
    rng = random.Random(11)
    with db.session() as s:
        units = {d.code: d.id for d in s.scalars(select(Department).where(Department.code.in_(UNITS)))}
        assert set(units) == set(UNITS)
        base = {
            c.name: getattr(s.get(Report, template), c.key)
            for c in Report.__table__.columns
            if c.name not in ("id", "grid_cell", "idempotency_key")
        }
        ids = []
        for _ in range(60):
            created = NOW - timedelta(minutes=rng.randrange(0, 60 * 24 * 40), seconds=30)
            row = {
                **base,
                "lat": CITY_HALL[0] + rng.uniform(-0.03, 0.03),
                "lon": CITY_HALL[1] + rng.uniform(-0.04, 0.04),
                "status": rng.choice(STATUSES),
                "category_code": rng.choice(CATEGORIES),
                "unit_id": units[rng.choice(UNITS)],
                "created_at": created,
                "updated_at": created + timedelta(minutes=rng.randrange(0, 600)),
            }
            ids.append(s.execute(insert(Report).values(row).returning(Report.id)).scalar())
    yield ids
    with db.session() as s:
        s.execute(delete(Report).where(Report.id.in_([*ids, template])))


def stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


queries = st.fixed_dictionaries(
    {
        # "open" and "closed" name the spec's groups; the detailed statuses are an extension.
        "status": st.one_of(
            st.none(),
            st.sampled_from(["open", "closed"]),
            st.lists(st.sampled_from(("acknowledged", "in_progress", "fixed", "duplicate")), min_size=1, max_size=3),
        ),
        "category": st.one_of(st.none(), st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2)),
        "area": st.one_of(
            st.none(),
            st.tuples(st.just("circle"), st.floats(-0.02, 0.02), st.floats(-0.02, 0.02), st.floats(100, 4000)),
            st.tuples(
                st.just("box"),
                st.floats(-0.03, 0.0),
                st.floats(-0.04, 0.0),
                st.floats(0.002, 0.05),
                st.floats(0.002, 0.06),
            ),
        ),
        "agency": st.one_of(st.none(), st.sampled_from(UNITS)),
        "days": st.tuples(st.integers(0, 45), st.integers(1, 60)),
        "by_update": st.booleans(),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=queries)
def test_open311_and_the_service_find_the_same_reports(client, db, stored, q):
    params: dict = {}
    query = S.ReportQuery(page_size=1000, ids=stored)
    if isinstance(q["status"], str):
        params["status"] = q["status"]
        query.status = sorted(S.OPEN_STATUSES if q["status"] == "open" else S.CLOSED_STATUSES)
    elif q["status"]:
        params["status"] = ",".join(q["status"])
        query.status = q["status"]
    if q["category"]:
        params["service_code"] = ",".join(q["category"])
        query.category = q["category"]
    if q["area"] and q["area"][0] == "circle":
        _, dlat, dlon, radius = q["area"]
        lat, lon = CITY_HALL[0] + dlat, CITY_HALL[1] + dlon
        params.update(lat=lat, long=lon, radius=radius)
        query.near = (lat, lon, radius)
    elif q["area"]:
        _, dlat, dlon, height, width = q["area"]
        box = (CITY_HALL[1] + dlon, CITY_HALL[0] + dlat, CITY_HALL[1] + dlon + width, CITY_HALL[0] + dlat + height)
        params["bbox"] = ",".join(map(str, box))
        query.bbox = box
    if q["agency"]:
        params["agency_responsible"] = q["agency"]
        query.unit = q["agency"]
    back, span = q["days"]
    start, end = NOW - timedelta(days=back + span), NOW - timedelta(days=back)
    if q["by_update"]:
        params.update(updated_after=stamp(start), updated_before=stamp(end))
        query.updated_after, query.updated_before = start, end
    else:
        params.update(start_date=stamp(start), end_date=stamp(min(end, start + timedelta(days=90))))
        query.created_after, query.created_before = start, min(end, start + timedelta(days=90))

    r = client.get(f"{V2}/requests.json", params={**params, "page_size": 1000})
    assert r.status_code == 200, r.text
    by_open311 = {int(x["service_request_id"]) for x in r.json()} & set(stored)
    with db.session() as s:
        by_service = {rep.id for rep in S.search(s, query).items}
    assert by_open311 == by_service, params
