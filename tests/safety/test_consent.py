"""Consent on both stores: withdrawing it stops intake at once and closes the guardian links resting on it;
the history can then be deleted (audited); devices can be removed; and a change made by the CLI in another
process reaches a running server within seconds (on SQLite through the event log, as NOTIFY on PostgreSQL)."""

from __future__ import annotations

import re
from datetime import timedelta
from itertools import count

import httpx
import pytest
from sqlalchemy import func, select

from smartcity.core.db import utcnow
from smartcity.core.errors import Conflict, PermissionDenied
from smartcity.core.models import AuditEntry
from smartcity.safety import service
from smartcity.safety.engine import NoConsent, get_engine
from smartcity.safety.models import DeviceState, SafetyEvent, all_positions
from tests.conftest import eventually, make_user, signin
from tests.helpers import BROWSER_TIMEOUT, browser_signin, run_cli, serve
from tests.safety.helpers import HOME, SCHOOL, fix, make_world, traccar_query
from tests.servers import free_port, wait_for_port


def _audits(db, action: str) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _positions(db, person_id: int) -> int:
    """Stored positions of the person, staged by a writer process or not."""
    stored = all_positions()
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(stored).where(stored.c.person_id == person_id))


def _walk_in(engine, w, minutes_ago: float = 5) -> None:
    start = utcnow() - timedelta(minutes=minutes_ago)
    for i, point in enumerate([HOME, SCHOOL]):
        engine.intake_sync(fix(w.device, start + timedelta(seconds=30 * i), point))


def test_withdrawal_stops_intake_at_once_and_closes_the_links_resting_on_it(db, engine):
    w = make_world(db)  # the mother's consent: given by Kim Minji (mother), form 17
    father = make_user(db, "father", "guardian")
    grandma = make_user(db, "grandma", "guardian")
    with db.session() as s:
        service.record_consent(s, w.person_id, father, given_by="Kim Minji (mother)", basis="form 17", actor="test")
        service.record_consent(s, w.person_id, grandma, given_by="Family court", basis="order 2024-88", actor="test")
    _walk_in(engine, w)
    assert _positions(db, w.person_id) == 2

    # The mother withdraws the consent she gave: her link and the father's (resting on it) close.
    with db.session() as s:
        closed = service.withdraw_consent(s, w.person_id, w.guardian_id, actor="test")
    assert sorted(link.user_id for link in closed) == sorted([w.guardian_id, father])
    with db.session() as s:
        assert service.guardian_ids(s, w.person_id) == [grandma]
        assert service.wards(s, w.identity(db, w.guardian_id)) == []
    with pytest.raises(PermissionDenied), db.session() as s:
        service.current_position(s, w.identity(db, father), w.person_id)
    # The court's consent still stands: intake goes on.
    engine.intake_sync(fix(w.device, utcnow() - timedelta(minutes=1), SCHOOL))

    with db.session() as s:
        service.withdraw_consent(s, w.person_id, actor="test")
    with pytest.raises(NoConsent):  # at once: no wait for a reload
        engine.intake_sync(fix(w.device, utcnow() - timedelta(seconds=30), HOME))
    assert [e.detail["user_id"] for e in _audits(db, "withdraw_consent")] == [w.guardian_id, father, grandma]

    with db.session() as s:
        counts = service.delete_history(s, w.person_id, actor="test")
    assert counts["positions"] == 3 and _positions(db, w.person_id) == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(SafetyEvent).where(SafetyEvent.person_id == w.person_id)) == 0
        assert s.get(DeviceState, w.device_id).lat is None
    [entry] = _audits(db, "delete_history")
    assert entry.object_id == str(w.person_id) and entry.detail["positions"] == 3


def test_a_guardian_withdraws_consent_on_their_page(db, client, engine):
    w = make_world(db)
    _walk_in(engine, w)
    signin(client, "stranger")
    page = client.get(f"/safety/guardian/{w.person_id}")
    assert page.status_code == 403
    signin(client, "mother")
    page = client.get(f"/safety/guardian/{w.person_id}")
    assert page.status_code == 200 and f'action="/safety/guardian/{w.person_id}/withdraw"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post(
        f"/safety/guardian/{w.person_id}/withdraw",
        data={"csrf_token": token, "delete_history": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with pytest.raises(NoConsent):
        engine.intake_sync(fix(w.device, utcnow() - timedelta(seconds=20), HOME))
    assert _positions(db, w.person_id) == 0
    assert [e.actor for e in _audits(db, "withdraw_consent")] == ["mother"]
    assert [e.actor for e in _audits(db, "delete_history")] == ["mother"]
    # Her ward is gone from her page; reading it again is refused (and audited).
    assert client.get(f"/api/safety/wards/{w.person_id}/position").status_code == 403
    assert _audits(db, "location_denied")[-1].actor == "mother"


def test_history_stays_while_another_consent_keeps_others_following(db, client, engine):
    w = make_world(db)
    other = make_user(db, "grandma", "guardian")
    with db.session() as s:
        service.record_consent(s, w.person_id, other, given_by="Family court", basis="order 2024-88", actor="test")
    _walk_in(engine, w)
    signin(client, "mother")
    token = re.search(r'data-csrf="([^"]+)"', client.get("/safety/guardian").text).group(1)
    r = client.post(
        f"/api/safety/wards/{w.person_id}/consent/withdraw",
        params={"delete_history": "true"},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "history_in_use"
    with db.session() as s:  # nothing half-done: the mother's consent still stands, the history too
        assert service.guardian_ids(s, w.person_id) == sorted([w.guardian_id, other])
    assert _positions(db, w.person_id) == 2
    r = client.post(f"/api/safety/wards/{w.person_id}/consent/withdraw", headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.json()["consent_left"] is True and r.json()["closed"] == [w.guardian_id]
    engine.intake_sync(fix(w.device, utcnow() - timedelta(seconds=20), HOME))  # grandma's consent: still tracked


def test_withdrawing_without_a_consent_is_refused(db):
    w = make_world(db, consent=False)
    with pytest.raises(Exception) as err, db.session() as s:
        service.withdraw_consent(s, w.person_id, actor="test")
    assert getattr(err.value, "code", None) == "no_consent"
    with pytest.raises(Conflict), db.session() as s:
        service.add_device(s, w.person_id, w.device, actor="test")  # still registered, nothing else changed


@pytest.mark.browser
def test_the_guardian_withdraws_consent_in_a_browser(live_app, page):
    w = make_world(live_app.db)
    engine = get_engine(live_app.db)
    _walk_in(engine, w)
    browser_signin(page, live_app, "mother", f"/safety/guardian/{w.person_id}?lang=ko")
    page.wait_for_selector("#map[data-safety=ready]", timeout=BROWSER_TIMEOUT)
    assert not page.locator("#withdraw-form").is_visible()  # two steps: nothing to press by mistake
    page.click("#withdraw summary")
    assert page.locator("#withdraw-form button").inner_text() == "동의 철회"
    page.check("input[name=delete_history]")
    page.click("#withdraw-form button[type=submit]")
    page.wait_for_url("**/safety/guardian", timeout=BROWSER_TIMEOUT)
    assert page.locator("#map").count() == 0  # no ward left to show
    with pytest.raises(NoConsent):
        engine.intake_sync(fix(w.device, utcnow() - timedelta(seconds=20), HOME))
    assert _positions(live_app.db, w.person_id) == 0
    assert [e.actor for e in _audits(live_app.db, "withdraw_consent")] == ["mother"]


# --- the CLI, in another process, against a running server ------------------------------------------


def test_cli_consent_withdrawal_and_removal_reach_a_running_server(db, db_url, tmp_path):
    """The issue: a device refused for "no consent" stayed refused after `smartcity safety consent` until
    the server restarted (SQLite). Now consent, its withdrawal and a device's removal each take effect in
    the running server within seconds; the history is deleted by the CLI, audited."""
    w = make_world(db, consent=False)
    port = free_port()
    proc = serve(db_url, tmp_path / "var", port)
    base = f"http://127.0.0.1:{port}"
    ticks = count()

    def send() -> int:  # a new fix each time (Traccar Client's query), so none is a replay
        at = utcnow() - timedelta(minutes=10) + timedelta(seconds=next(ticks))
        return httpx.get(f"{base}/osmand?{traccar_query(w.device, at)}", timeout=30).status_code

    def consent(basis: str) -> None:
        run_cli(db_url, "safety", "consent", "--person", str(w.person_id), "--guardian", "mother",
                "--given-by", "Kim Minji (mother)", "--basis", basis)  # fmt: skip

    try:
        wait_for_port(port, timeout=60)
        eventually(lambda: httpx.get(f"{base}/healthz").json().get("events", "listening") == "listening", timeout=20)
        assert send() == 403  # no consent: nothing stored
        consent("form 17")
        eventually(lambda: send() == 200, interval=0.2)

        out = run_cli(db_url, "safety", "consent-withdraw", "--person", str(w.person_id))
        assert "intake stopped" in out and "history-delete" in out
        eventually(lambda: send() == 403, interval=0.2)

        consent("form 18")
        eventually(lambda: send() == 200, interval=0.2)
        run_cli(db_url, "safety", "device-remove", w.device)
        eventually(lambda: send() not in (200, 403), interval=0.2)  # an unknown device now

        assert _positions(db, w.person_id) > 0
        out = run_cli(db_url, "safety", "history-delete", str(w.person_id), "--yes")
        assert "deleted" in out and _positions(db, w.person_id) == 0
        assert [e.actor for e in _audits(db, "delete_history")] == ["cli"]
        assert [e.actor for e in _audits(db, "deactivate")] == ["cli"]
    finally:
        proc.terminate()
        proc.wait(15)
