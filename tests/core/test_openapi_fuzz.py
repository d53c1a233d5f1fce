"""Property-based fuzzing of the platform's own API from its OpenAPI spec (schemathesis): no request,
however odd, gets a server error or an answer that breaks the spec. Modules' operations are fuzzed too."""

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from smartcity.app import create_app
from smartcity.core.auth import ANONYMOUS
from smartcity.core.db import Database
from smartcity.reports import service as S
from tests.conftest import make_key, make_settings, make_user


def _describe(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None)
    if inner:
        return "; ".join(_describe(e) for e in inner)
    return " ".join(str(exc).split())[:300]


def test_the_api_answers_every_request_within_its_spec(sqlite_url, tmp_path):
    db = Database(sqlite_url)
    app = create_app(make_settings(sqlite_url, tmp_path, run_jobs=False), db)
    make_user(db, "admin1", "admin")
    headers = {"X-API-Key": make_key(db, "admin1")}
    # A stored report, so the list's and the dashboard's answers are checked against their schemas with items.
    with db.session() as s:
        new = S.NewReport(
            category="roads-pothole", lat=37.5665, lon=126.978, title="Pothole", attributes={"size": "large"}
        )
        S.create_report(s, ANONYMOUS, new)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    checked, failures = [], []
    for result in schema.exclude(path="/api/events/stream").get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            # Business rules (a point outside the city, an unknown role) rightly refuse schema-valid data.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, then report all
            failures.append(f"{operation.label}: {_describe(exc)}")
        checked.append(operation.label)
    assert {"GET /api/geo/locate", "GET /api/reports", "GET /api/reports/dashboard"} <= set(checked)
    assert not failures, "\n".join(failures)
    db.dispose()
