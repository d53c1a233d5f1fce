"""The administrator's pages: the audit log (paged by id, filtered, each entry a sentence in the page's language,
reading it audited) and accounts (edited, disabled and enabled, their role changed, within the rules)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from smartcity.core import audit
from smartcity.core.models import AuditEntry, District, User
from tests.conftest import eventually, make_key, make_user, signin
from tests.helpers import SSEReader, browser_signin, run_async


def token_of(page_text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_text).group(1)


def ids_on(page_text: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="audit-entry" data-id="(\d+)"', page_text)]


def user_id(db, username: str) -> int:
    with db.session() as s:
        return s.scalar(select(User.id).where(User.username == username))


def log(db, n: int, action: str, object_type: str = "report", at: datetime | None = None) -> list[int]:
    """`n` entries written as the modules write theirs; `at` backdates them."""
    with db.session() as s:
        rows = [audit.record(s, "clerk", action, object_type, i, {"n": i}) for i in range(n)]
        s.flush()
        for row in rows:
            if at is not None:
                row.at = at
        return [row.id for row in rows]


def jar(client) -> list:
    return list(client.cookies.jar)


def use(client, cookies: list) -> None:
    """Act as the holder of `cookies` (one client, one app: the store's listeners run once)."""
    client.cookies.clear()
    for cookie in cookies:
        client.cookies.jar.set_cookie(cookie)


def as_user(client, username: str) -> None:
    client.cookies.clear()
    assert signin(client, username).status_code == 303


@pytest.fixture
def admin(client, db):
    make_user(db, "admin1", "admin")
    signin(client, "admin1")
    return client


# --- the audit log ---------------------------------------------------------------------------------------


def test_the_audit_log_is_paged_by_id_newest_first_and_every_entry_is_seen_once(admin, db):
    written = log(db, 120, "export")
    seen: list[int] = []
    url = "/admin/audit?action=export"
    pages = 0
    while url:
        page = admin.get(url)
        assert page.status_code == 200
        ids = ids_on(page.text)
        assert 0 < len(ids) <= 50 and ids == sorted(ids, reverse=True)
        seen += ids
        pages += 1
        # An entry written between two pages does not shift what the next page shows (keyset, not OFFSET).
        log(db, 1, "export")
        found = re.search(r'href="([^"]+)" id="audit-older"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert pages == 3
    assert seen == sorted(written, reverse=True)


def test_the_filters_actor_action_subject_type_and_days(admin, db):
    log(db, 2, "export", "report")
    log(db, 2, "delete", "asset")
    old = log(db, 1, "delete", "asset", at=datetime(2026, 3, 1, 3, 0, tzinfo=UTC))  # noon in Seoul, 1 March
    page = admin.get("/admin/audit?action=delete&object_type=asset").text
    actions = re.findall(r'class="audit-entry" data-id="\d+" data-action="([a-z_]+)"', page)
    assert actions == ["delete"] * 3
    page = admin.get("/admin/audit?object_type=asset&since=2026-03-01&until=2026-03-01").text
    assert ids_on(page) == old
    assert ids_on(admin.get("/admin/audit?object_type=asset&until=2026-02-28").text) == []
    mine = admin.get("/admin/audit?actor=admin1").text  # the administrator's sign-in, not the clerk's entries
    assert 'data-action="signin"' in mine and 'data-action="export"' not in mine
    wrong = admin.get("/admin/audit?since=yesterday")
    assert wrong.status_code == 422 and "invalid_date" in wrong.text


def test_each_entry_is_a_sentence_in_the_pages_language_with_details_as_a_list(admin, db):
    target = make_user(db, "minji", "citizen")
    with db.session() as s:
        audit.record(s, "admin1", "disable", "user", target, {"username": "minji"})
        audit.record(s, "guard7", "recalibrate", "safety_person", 4, {"day": "2026-05-01", "points": [1, 2]})
        audit.record(s, "job:retention", "read_contact", "report", 12, {"present": False, "old": "in_progress"})
        district = s.scalars(select(District).order_by(District.code)).first()
        audit.record(s, "safety", "open", "safety_incident", 3, {"district": district.code})
    en = admin.get("/admin/audit?lang=en").text
    assert "admin1 disabled account " + str(target) in en
    # An action no module tells: its code, readable; the object type by the module's word for it.
    assert "guard7: recalibrate (protected person 4)" in en
    assert '<dt>day</dt><dd title="2026-05-01">2026-05-01</dd>' in en and ">1, 2</dd>" in en
    assert '{"' not in en and "&#34;" not in en  # no raw JSON anywhere
    ko = admin.get("/admin/audit?lang=ko").text
    # Particles by how the word before ends aloud: admin1 (일) takes 이; "N번 계정" (정) takes 을.
    assert f"admin1이 {target}번 계정을 사용 중지했습니다" in ko
    # A module's object, detail keys and values in words; the recorded value kept in the title for auditors.
    assert "연락처 보관 기한 예약 작업이 12번 신고의 연락처를 열람했습니다" in ko
    assert '<dt>있음 여부</dt><dd title="false">아니요</dd>' in ko
    assert '<dt>이전</dt><dd title="in_progress">처리 중</dd>' in ko
    assert f'<dt>자치구</dt><dd title="{district.code}">{district.name_ko}</dd>' in ko  # a row's code, named


def test_reading_the_audit_log_is_audited_and_so_is_a_refusal(admin, db):
    admin.get("/admin/audit?action=export&object_type=report")
    with db.session() as s:
        read = s.scalars(select(AuditEntry).where(AuditEntry.action == "read_audit")).all()
    assert len(read) == 1 and read[0].actor == "admin1"
    assert read[0].detail == {"action": "export", "object_type": "report"}
    make_user(db, "minji", "citizen")
    as_user(admin, "minji")
    assert admin.get("/admin/audit").status_code == 403
    with db.session() as s:
        refused = s.scalars(select(AuditEntry).where(AuditEntry.action == "access_denied")).all()
    assert [(e.actor, e.object_id) for e in refused] == [("minji", "/admin/audit")]


# --- accounts -------------------------------------------------------------------------------------------


def test_an_account_is_edited_and_its_role_changed_with_the_change_in_the_log(admin, db):
    uid = make_user(db, "junho", "citizen")
    page = admin.get(f"/admin/users/{uid}")
    assert page.status_code == 200 and 'data-username="junho"' in page.text
    form = {
        "csrf_token": token_of(page.text),
        "display_name": "Kim Junho",
        "email": "junho@example.org",
        "department": "11230-roads",
        "role": "staff",
    }
    assert admin.post(f"/admin/users/{uid}", data=form, follow_redirects=False).status_code == 303
    with db.session() as s:
        user = s.get(User, uid)
        assert (user.display_name, user.email, user.department.code, user.role) == (
            "Kim Junho",
            "junho@example.org",
            "11230-roads",
            "staff",
        )
        told = {e.action: e.detail for e in audit.entries(s, object_type="user", object_id=uid)}
    assert told["change_role"] == {"role": "citizen → staff"}
    assert told["update"]["unit"] == "— → 11230-roads"


@pytest.mark.parametrize(
    "change, code",
    [
        ({"role": "superuser"}, "unknown_role"),  # only the roles the modules declare
        ({"role": "staff", "department": ""}, "unit_required"),
        ({"role": "staff", "department": "11230-control"}, "wrong_unit_kind"),
        ({"email": "not-an-address"}, "invalid_email"),
    ],
)
def test_a_refused_edit_says_why_and_changes_nothing(admin, db, change, code):
    uid = make_user(db, "junho", "citizen", display_name="Junho")
    form = {"csrf_token": token_of(admin.get(f"/admin/users/{uid}").text), "display_name": "Changed", "role": "citizen"}
    answer = admin.post(f"/admin/users/{uid}", data=form | change)
    assert answer.status_code == 422 and f'data-code="{code}"' in answer.text
    with db.session() as s:
        user = s.get(User, uid)
        assert (user.display_name, user.role, user.email) == ("Junho", "citizen", None)
        assert [e.action for e in audit.entries(s, object_type="user", object_id=uid)] == ["create"]


def test_an_edit_without_the_forms_token_is_refused(admin, db):
    uid = make_user(db, "junho", "citizen")
    answer = admin.post(f"/admin/users/{uid}", data={"role": "admin", "display_name": "x"})
    assert answer.status_code == 403
    answer = admin.post(f"/admin/users/{uid}/active", data={"active": "0"})
    assert answer.status_code == 403
    with db.session() as s:
        assert (s.get(User, uid).role, s.get(User, uid).active) == ("citizen", True)


def test_a_disabled_account_cannot_sign_in_and_its_sessions_and_keys_stop(admin, db):
    uid = make_user(db, "minji", "citizen")
    key = make_key(db, "minji")
    boss = jar(admin)
    as_user(admin, "minji")
    phone = jar(admin)  # minji's signed-in session, kept open on her phone
    assert admin.get("/api/me").json()["username"] == "minji"
    assert admin.get("/api/me", headers={"X-API-Key": key}).json()["username"] == "minji"

    use(admin, boss)
    token = token_of(admin.get(f"/admin/users/{uid}").text)
    disabled = admin.post(
        f"/admin/users/{uid}/active", data={"csrf_token": token, "active": "0"}, follow_redirects=False
    )
    assert disabled.status_code == 303
    boss = jar(admin)  # with the form's token in its session now
    use(admin, phone)
    assert admin.get("/api/me").json()["authenticated"] is False  # the open session ended
    admin.cookies.clear()
    assert admin.get("/api/me", headers={"X-API-Key": key}).status_code == 401
    assert signin(admin, "minji").status_code == 401
    with db.session() as s:
        assert [e.action for e in audit.entries(s, object_type="user", object_id=uid)][0] == "disable"

    use(admin, boss)
    enabled = admin.post(
        f"/admin/users/{uid}/active", data={"csrf_token": token, "active": "1"}, follow_redirects=False
    )
    assert enabled.status_code == 303
    admin.cookies.clear()
    assert admin.get("/api/me", headers={"X-API-Key": key}).json()["username"] == "minji"
    assert signin(admin, "minji").status_code == 303


def test_a_disabled_accounts_key_is_not_found_anywhere(db):
    from smartcity.core import accounts

    uid = make_user(db, "partner", "citizen")
    key = make_key(db, "partner", scope="open311")
    with db.session() as s:
        assert accounts.find_api_key(s, key, scope="open311") is not None
        accounts.set_active(s, uid, False, actor="cli")
    with db.session() as s:
        assert accounts.find_api_key(s, key, scope="open311") is None


def test_an_administrator_cannot_remove_their_own_admin_role_or_disable_themselves(admin, db):
    me = user_id(db, "admin1")
    token = token_of(admin.get(f"/admin/users/{me}").text)
    demoted = admin.post(f"/admin/users/{me}", data={"csrf_token": token, "display_name": "A", "role": "citizen"})
    assert demoted.status_code == 422 and 'data-code="own_admin_role"' in demoted.text
    gone = admin.post(f"/admin/users/{me}/active", data={"csrf_token": token, "active": "0"})
    assert gone.status_code == 422 and 'data-code="own_account"' in gone.text
    with db.session() as s:
        assert (s.get(User, me).role, s.get(User, me).active) == ("admin", True)
    # Another administrator may.
    make_user(db, "admin2", "admin")
    other_id = user_id(db, "admin2")
    form = {"csrf_token": token, "active": "0"}
    other = admin.post(f"/admin/users/{other_id}/active", data=form, follow_redirects=False)
    assert other.status_code == 303
    with db.session() as s:
        assert s.get(User, other_id).active is False


def test_the_accounts_pages_speak_korean(admin, db):
    uid = make_user(db, "minji", "citizen")
    listing = admin.get("/admin/users?lang=ko").text
    assert "시민: 문제를 신고하고" in listing and 'data-role="citizen"' in listing
    assert "사용 중" in listing
    assert "이 계정 사용 중지" in admin.get(f"/admin/users/{uid}?lang=ko").text


# --- in a browser ---------------------------------------------------------------------------------------


@pytest.mark.browser
def test_the_audit_filters_in_a_browser(live_app, page):
    make_user(live_app.db, "admin1", "admin")
    log(live_app.db, 3, "export", "report")
    log(live_app.db, 2, "delete", "asset", at=datetime.now(UTC) - timedelta(days=3))
    browser_signin(page, live_app, "admin1", "/admin/audit?lang=en")
    page.fill("input[name=action]", "delete")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_url("**action=delete*")
    sentences = page.locator(".audit-sentence").all_inner_texts()
    assert sentences == ["clerk deleted asset 1", "clerk deleted asset 0"]
    today = datetime.now(UTC).date().isoformat()
    page.fill("input[name=since]", today)
    page.click("#audit-filters button[type=submit]")
    page.wait_for_selector("p.empty")
    assert page.locator(".audit-entry").count() == 0


def test_a_disabled_accounts_open_streams_end_and_no_one_elses(db):
    """On both stores, through the bus as a serving process runs it (PostgreSQL: its LISTEN connection)."""
    from smartcity.core import accounts
    from smartcity.core.auth import Identity

    uid = make_user(db, "minji", "citizen")
    other = make_user(db, "junho", "citizen")

    def disable() -> None:
        with db.session() as s:
            accounts.set_active(s, uid, False, actor="cli")

    async def until_end(sub) -> bool:
        """Whether the stream ends within a few seconds (events before the end are let through)."""
        try:
            while True:
                if await asyncio.wait_for(sub.get(), 5) is None:
                    return True
        except TimeoutError:
            return False

    async def scenario() -> tuple[bool, bool]:
        await db.events.start()
        if db.is_postgres:
            await asyncio.to_thread(db.events.listening.wait, 10)
        try:
            hers = db.events.subscribe(identity=Identity(user_id=uid, username="minji", role="citizen", via="key"))
            his = db.events.subscribe(identity=Identity(user_id=other, username="junho", role="citizen", via="key"))
            await asyncio.to_thread(disable)
            ended = await until_end(hers)
            his_ended = await until_end(his)
            return ended, his_ended
        finally:
            await db.events.stop()

    assert run_async(scenario()) == (True, False)


def test_a_disabled_accounts_event_stream_stops_delivering(live_app):
    from smartcity.core import accounts
    from smartcity.core.events import publish

    uid = make_user(live_app.db, "minji", "citizen")
    key = make_key(live_app.db, "minji")

    def tell_minji(n: int) -> None:
        with live_app.db.session() as s:
            publish(s, "test.note", {"n": n}, users=[uid])

    with SSEReader(f"{live_app.url}/api/events/stream?topics=test.", {"X-API-Key": key}) as stream:
        tell_minji(1)
        eventually(lambda: stream.of("test.note") == [{"n": 1}])
        with live_app.db.session() as s:
            accounts.set_active(s, uid, False, actor="cli")
        # The server ends her stream (waited for, not slept on: under load half a second was not enough).
        assert stream.ended.wait(30), "the disabled account's stream is still open"
        tell_minji(2)
        assert stream.of("test.note") == [{"n": 1}]
