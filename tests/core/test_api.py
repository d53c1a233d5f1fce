"""The core's HTTP surface: health, metrics, OpenAPI, the error shape, accounts and permissions."""

import re

from smartcity.core import audit
from tests.conftest import PASSWORD, make_key, make_user, signin


def test_health_reports_the_store(client, db):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"] == db.engine.dialect.name


def test_metrics_count_requests_by_route(client):
    client.get("/api/geo/locate", params={"lat": 37.5663, "lon": 126.9779})
    text = client.get("/metrics").text
    line = re.search(r'smartcity_http_requests_total\{method="GET",route="/api/geo/locate",status="200"\} (\S+)', text)
    assert line and float(line.group(1)) >= 1


def test_openapi_is_served(client):
    spec = client.get("/api/openapi.json").json()
    assert "/api/geo/locate" in spec["paths"]
    assert client.get("/api/docs").status_code == 200


def test_errors_share_one_shape(client):
    outside = client.get("/api/geo/locate", params={"lat": 35.1796, "lon": 129.0756})
    assert outside.status_code == 422
    assert outside.json()["error"]["code"] == "outside_city"
    malformed = client.get("/api/geo/locate", params={"lat": "north", "lon": 127})
    assert malformed.status_code == 422
    assert malformed.json()["error"]["code"] == "invalid"
    assert malformed.json()["error"]["details"][0]["field"] == "query.lat"
    missing = client.get("/api/no/such/thing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_districts_geojson_has_every_district(client):
    fc = client.get("/api/geo/districts.geojson?lang=en").json()
    assert len(fc["features"]) == 25
    names = {f["properties"]["name"] for f in fc["features"]}
    assert {"Gangnam-gu", "Jongno-gu"} <= names


def test_user_management_needs_the_permission(client, db):
    make_user(db, "admin1", "admin")
    make_user(db, "minji", "citizen")
    citizen_key, admin_key = make_key(db, "minji"), make_key(db, "admin1")
    body = {"username": "junho", "password": PASSWORD, "role": "staff", "department": "11230-roads"}
    assert client.post("/api/users", json=body).status_code == 401
    assert client.post("/api/users", json=body, headers={"Authorization": f"Bearer {citizen_key}"}).status_code == 403
    created = client.post("/api/users", json=body, headers={"Authorization": f"Bearer {admin_key}"})
    assert created.status_code == 201, created.text
    assert created.json()["department"] == "11230-roads"
    again = client.post("/api/users", json=body, headers={"X-API-Key": admin_key})
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_user"
    bad_role = client.post(
        "/api/users", json={**body, "username": "x1y2z3", "role": "mayor"}, headers={"X-API-Key": admin_key}
    )
    assert bad_role.status_code == 422 and bad_role.json()["error"]["code"] == "unknown_role"
    listed = client.get("/api/users", headers={"X-API-Key": admin_key}).json()
    assert [u["username"] for u in listed] == ["admin1", "junho", "minji"]
    with db.session() as s:
        trail = audit.entries(s, object_type="user")
        assert any(e.actor == "admin1" and e.action == "create" and e.detail["username"] == "junho" for e in trail)


def test_a_revoked_or_unknown_key_is_refused(client, db):
    r = client.get("/api/me", headers={"Authorization": "Bearer sc_nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_signin_sets_a_session_and_forms_need_the_csrf_token(client, db):
    make_user(db, "minji", "citizen")
    assert client.get("/api/me").json()["authenticated"] is False
    r = signin(client, "minji", "wrong password")
    assert r.status_code == 401
    r = signin(client, "minji")
    assert r.status_code == 303
    me = client.get("/api/me").json()
    assert me == {"authenticated": True, "username": "minji", "role": "citizen", "department": None, "via": "session"}
    # Sign-out without the token is refused, and the session survives.
    r = client.post("/signout", data={}, follow_redirects=False)
    assert r.status_code == 403
    assert client.get("/api/me").json()["authenticated"] is True
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)
    assert client.post("/signout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert client.get("/api/me").json()["authenticated"] is False


def test_signin_without_a_token_is_refused(client, db):
    make_user(db, "minji", "citizen")
    r = client.post("/signin", data={"username": "minji", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403
    assert client.get("/api/me").json()["authenticated"] is False


def test_signin_does_not_redirect_off_site(client, db):
    make_user(db, "minji", "citizen")
    page = client.get("/signin?next=//evil.example/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post(
        "/signin",
        data={"username": "minji", "password": PASSWORD, "csrf_token": token, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"


def test_pages_speak_korean_by_default_and_english_on_request(client):
    assert "로그인" in client.get("/").text
    english = client.get("/?lang=en")
    assert "Sign in" in english.text and english.cookies.get("lang") == "en"
    assert "Sign in" in client.get("/").text  # the cookie sticks
    client.get("/lang/ko")
    assert "로그인" in client.get("/").text


def test_html_errors_are_pages(client):
    r = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "<html" in r.text


def test_repeated_failed_signins_are_throttled(client, db):
    make_user(db, "minji", "citizen")
    for _ in range(5):
        assert signin(client, "minji", "guess").status_code == 401
    # Even the right password is refused while the window lasts, and the refusal is audited.
    r = signin(client, "minji")
    assert r.status_code == 429
    assert client.get("/api/me").json()["authenticated"] is False
    with db.session() as s:
        assert [e.action for e in audit.entries(s, object_type="user")][:2] == ["signin_throttled", "signin_failed"]


def test_administrators_manage_accounts_in_the_admin_pages(client, db):
    make_user(db, "admin1", "admin")
    make_user(db, "minji", "citizen")
    signin(client, "minji")
    assert client.get("/admin/users").status_code == 403
    client.cookies.clear()
    signin(client, "admin1")
    page = client.get("/admin/users")
    assert page.status_code == 200 and 'data-username="minji"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    form = {
        "csrf_token": token,
        "username": "junho",
        "role": "staff",
        "department": "11230-control",
        "password": PASSWORD,
    }
    wrong_unit = client.post("/admin/users", data=form)
    assert wrong_unit.status_code == 422 and 'data-code="wrong_unit_kind"' in wrong_unit.text
    assert 'value="junho"' in wrong_unit.text  # what was typed is kept
    created = client.post("/admin/users", data={**form, "department": "11230-roads"}, follow_redirects=False)
    assert created.status_code == 303
    assert 'data-username="junho"' in client.get("/admin/users").text
    trail = client.get("/admin/audit?object_type=user").text
    assert "admin1" in trail and "create" in trail


def test_a_wrong_method_gets_the_error_shape_and_allow_header(client):
    r = client.delete("/api/geo/locate")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "http_405"
    assert "GET" in r.headers["allow"]
