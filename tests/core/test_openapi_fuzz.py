"""Property-based fuzzing of the platform's own API from its OpenAPI spec (schemathesis): no request,
however odd, gets a server error or an answer that breaks the spec. Modules' operations are fuzzed too."""

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from smartcity.app import create_app
from smartcity.core.db import Database
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
    assert "GET /api/geo/locate" in checked
    assert not failures, "\n".join(failures)
    db.dispose()
