"""The installable app on a phone (Debian's chromium, 390×844): the service worker controls the page, a report
with a photo filed with the network cut is kept on the phone and sent once when the network returns, and the
form starts from the camera (the pin from the photo's EXIF position, a suggested category to confirm)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from smartcity.core.pages import HOME_ACTIONS
from smartcity.reports.models import Report, ReportPhoto
from tests.conftest import eventually, make_user
from tests.reports.helpers import CITY_HALL, file_report, jpeg, sign_in

pytestmark = pytest.mark.browser

POTHOLE = "roads-pothole"


def stored(db) -> list[tuple[int, str, int]]:
    """Every report as (id, title, its photos)."""
    with db.session() as s:
        photos = dict(s.execute(select(ReportPhoto.report_id, func.count()).group_by(ReportPhoto.report_id)).all())
        return [(r.id, r.title, photos.get(r.id, 0)) for r in s.scalars(select(Report).order_by(Report.id))]


def controlled(page) -> None:
    """Wait until the service worker is active and controls the page."""
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=20000)


def open_form(page, url: str) -> None:
    page.goto(url + "/reports/new?lang=en")
    page.wait_for_selector("#report-map[data-state=ready]", timeout=15000)


def test_manifest_parses_and_the_service_worker_controls_the_page(live_app, page):
    page.goto(live_app.url + "/?lang=en")
    href = page.get_attribute('link[rel="manifest"]', "href")
    manifest = page.evaluate("url => fetch(url).then(r => r.text())", href)
    parsed = json.loads(manifest)
    assert parsed["display"] == "standalone"
    controlled(page)
    scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == live_app.url + "/"
    # The shell is kept: the page's own stylesheet by the very URL the page asked for.
    css = page.get_attribute('link[rel="stylesheet"]', "href")
    assert page.evaluate("url => caches.match(url).then(r => !!r)", css)


def test_the_service_worker_keeps_nothing_personal(live_app, page):
    """Signed in, with contact details on the form: what the worker stores is the build, public geography and
    the main pages as a visitor sees them; no API answer, no personal page."""
    make_user(
        live_app.db, "minji", "citizen", display_name="Kim Minji", email="minji@example.kr", phone="010-2345-6789"
    )
    sign_in(page, live_app.url, "minji")
    open_form(page, live_app.url)
    assert page.input_value('input[name="email"]') == "minji@example.kr"  # the form is filled for her
    # The worker was installed on the sign-in page; installed again now, it fetches its pages while she is
    # signed in.
    page.evaluate(
        """async () => {
          for (const r of await navigator.serviceWorker.getRegistrations()) await r.unregister();
          for (const name of await caches.keys()) await caches.delete(name);
        }"""
    )
    page.reload()
    controlled(page)
    page.evaluate("navigator.serviceWorker.ready")
    for path in ("/reports/mine", "/reports/new?lang=en", "/api/me"):
        page.goto(live_app.url + path)
    page.goto(live_app.url + "/reports/new?lang=en")
    page.wait_for_selector("#report-map[data-state=ready]", timeout=15000)
    kept = page.evaluate(
        """async () => {
          const out = [];
          for (const name of await caches.keys()) {
            const cache = await caches.open(name);
            for (const request of await cache.keys()) {
              const text = (await cache.match(request)).headers.get("content-type")?.startsWith("text/html")
                ? await (await cache.match(request)).text() : "";
              out.push({ url: request.url, personal: /minji|2345-6789/i.test(text) });
            }
          }
          return out;
        }"""
    )
    pages = {"/", "/offline", *(a.href for a in HOME_ACTIONS)}  # the shell: home, offline, the main actions
    assert any(urlsplit(k["url"]).path == "/reports/new" for k in kept)
    for k in kept:
        url = urlsplit(k["url"])
        public = url.path.startswith("/static/build/") or (
            url.path.startswith("/api/geo/") and url.path.endswith(".geojson")
        )
        assert public or (url.path in pages and url.query.startswith("lang=")), k["url"]
        assert not k["personal"], k["url"]


def test_a_report_filed_offline_is_kept_and_sent_once_when_the_network_returns(live_app, page):
    open_form(page, live_app.url)
    controlled(page)
    before = stored(live_app.db)

    page.context.set_offline(True)
    page.select_option("#category", POTHOLE)
    page.select_option(f'select[name="attr.{POTHOLE}.size"]', "medium")
    page.locator("#report-map").click(position={"x": 195, "y": 170})
    page.wait_for_function("document.querySelector('#lat').value !== ''")
    page.fill("#title", "Pothole reported offline")
    page.set_input_files("#photos", files=[{"name": "hole.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}])
    page.click("#submit-report")
    page.wait_for_selector("#kept-note:not([hidden])")
    assert "kept on this phone" in page.inner_text("#kept-note")
    assert page.input_value("#title") == ""  # the form is clear for the next report
    assert stored(live_app.db) == before

    # Still offline, the page opens again (the service worker's copy) and says a report is waiting.
    page.reload()
    page.wait_for_selector("#outbox-note[data-waiting='1']", timeout=10000)
    assert stored(live_app.db) == before

    page.context.set_offline(False)
    page.wait_for_selector("#outbox-note .outbox-sent a", timeout=20000)
    new = eventually(lambda: [r for r in stored(live_app.db) if r not in before], timeout=10)
    assert [(title, photos) for _, title, photos in new] == [("Pothole reported offline", 1)]
    assert page.inner_text("#outbox-note .outbox-sent a") == f"#{new[0][0]}"
    assert page.get_attribute("#outbox-note", "data-waiting") == "0"

    # Another load, another online event: nothing is left to send, nothing is sent again.
    page.reload()
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.wait_for_selector("#outbox-note[data-waiting]", state="attached")
    page.wait_for_timeout(500)
    assert len(stored(live_app.db)) == len(before) + 1


def test_a_kept_report_sent_twice_with_its_key_makes_one_report(live_app, page):
    """Two senders at once (two tabs, or a page and the service worker) with the same kept report."""
    open_form(page, live_app.url)
    controlled(page)
    before = stored(live_app.db)
    page.context.set_offline(True)
    page.select_option("#category", POTHOLE)
    page.select_option(f'select[name="attr.{POTHOLE}.size"]', "large")
    page.locator("#report-map").click(position={"x": 195, "y": 170})
    page.wait_for_function("document.querySelector('#lat').value !== ''")
    page.fill("#title", "Kept twice")
    page.click("#submit-report")
    page.wait_for_selector("#kept-note:not([hidden])")
    # The kept report's own fields, posted twice at once as a sender would (its key included).
    posted = page.evaluate(
        """() => new Promise((resolve) => {
          const open = indexedDB.open("smartcity-outbox");
          open.onsuccess = () => {
            const all = open.result.transaction("reports").objectStore("reports").getAll();
            all.onsuccess = () => resolve(all.result.map((e) => e.fields));
          };
        })"""
    )
    assert len(posted) == 1 and dict(map(tuple, posted[0]))["idempotency_key"]
    page.context.set_offline(False)
    statuses = page.evaluate(
        """(fields) => Promise.all([1, 2].map(() => {
          const body = new FormData();
          for (const [k, v] of fields) body.append(k, v);
          return fetch("/reports/new", { method: "POST", body }).then((r) => r.url);
        }))""",
        posted[0],
    )
    assert len({urlsplit(u).path for u in statuses}) == 1
    page.reload()  # the page's own sender finds the same report sent: still one
    page.wait_for_selector("#outbox-note[data-waiting='0']", state="attached", timeout=20000)
    new = [r for r in stored(live_app.db) if r not in before]
    assert [title for _, title, _ in new] == ["Kept twice"]


def test_camera_first_places_the_pin_from_the_photo_and_suggests_a_category(live_app, page):
    # Reports of one category around the place the photo was taken make it the suggestion.
    for _ in range(2):
        file_report(live_app.db, category="roads-guardrail", where=CITY_HALL, attributes={})
    open_form(page, live_app.url)
    camera = page.locator("#camera")
    assert camera.get_attribute("capture") == "environment"
    assert camera.get_attribute("accept") == "image/*"
    # On a phone the camera is the first step of the form.
    first = page.evaluate("document.querySelector('#report-form section.step:not([hidden])').id")
    assert first == "camera-step"

    camera.set_input_files(files=[{"name": "street.jpg", "mimeType": "image/jpeg", "buffer": jpeg(exif=True)}])
    page.wait_for_selector("#report-map[data-inside=true]")
    lat, lon = float(page.input_value("#lat")), float(page.input_value("#lon"))
    # helpers.jpeg(exif=True) says 37°33'59" N, 126°58'40" E
    assert abs(lat - (37 + 33 / 60 + 59 / 3600)) < 1e-5 and abs(lon - (126 + 58 / 60 + 40 / 3600)) < 1e-5
    assert page.get_attribute("#camera-where", "data-source") == "photo"
    assert page.locator("#photo-preview img").count() == 1

    page.wait_for_selector("#suggested button.chip")
    assert page.input_value("#category") == ""  # suggested, not chosen
    chip = page.locator("#suggested button.chip").first
    assert chip.get_attribute("data-category") == "roads-guardrail"
    chip.click()
    assert page.input_value("#category") == "roads-guardrail"
    page.fill("#title", "Guardrail bent")
    page.click("#submit-report")
    page.wait_for_url("**/submitted")
    with live_app.db.session() as s:
        report = s.scalars(select(Report).order_by(Report.id.desc())).first()
        assert (report.title, report.category_code, report.photo_count) == ("Guardrail bent", "roads-guardrail", 1)
        assert abs(report.lat - lat) < 1e-6 and abs(report.lon - lon) < 1e-6


def test_a_kept_report_the_server_refuses_stays_on_the_phone_to_be_corrected(live_app, page):
    open_form(page, live_app.url)
    controlled(page)
    page.context.set_offline(True)
    page.select_option("#category", POTHOLE)
    page.select_option(f'select[name="attr.{POTHOLE}.size"]', "small")
    page.click("details.coords summary")
    page.fill("#lat", "35.1796")  # Busan: outside the city, which only the server can say while offline
    page.fill("#lon", "129.0756")
    page.fill("#title", "Far away")
    page.set_input_files("#photos", files=[{"name": "far.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}])
    page.click("#submit-report")
    page.wait_for_selector("#kept-note:not([hidden])")
    page.context.set_offline(False)
    page.wait_for_selector("#outbox-note .outbox-refused", timeout=20000)
    assert "Far away" in page.inner_text("#outbox-note .outbox-refused")
    assert stored(live_app.db) == []

    page.click("#outbox-note .outbox-refused a")  # back into the form, photo included
    page.wait_for_function("document.querySelector('#title').value === 'Far away'")
    assert page.input_value("#category") == POTHOLE
    assert page.eval_on_selector("#photos", "el => el.files.length") == 1
    page.wait_for_selector("#report-map[data-inside=false]")  # the pin shows where it was
    page.click("details.coords summary")
    page.fill("#lat", f"{CITY_HALL[0]}")
    page.fill("#lon", f"{CITY_HALL[1]}")
    page.dispatch_event("#lon", "change")
    page.click("#submit-report")
    page.wait_for_url("**/submitted")
    assert [(title, photos) for _, title, photos in stored(live_app.db)] == [("Far away", 1)]
    page.goto(live_app.url + "/reports?lang=en")
    assert page.get_attribute("#outbox-note", "data-waiting") in (None, "0")
    assert page.locator("#outbox-note .outbox-refused").count() == 0


def test_camera_first_without_a_position_in_the_photo_uses_the_phone_then_the_map(live_app, browser):
    context = browser.new_context(
        locale="ko-KR",
        viewport={"width": 390, "height": 844},
        geolocation={"latitude": CITY_HALL[0], "longitude": CITY_HALL[1]},
        permissions=["geolocation"],
    )
    page = context.new_page()
    open_form(page, live_app.url)
    page.set_input_files("#camera", files=[{"name": "plain.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}])
    page.wait_for_selector("#camera-where[data-source=device]")
    assert (float(page.input_value("#lat")), float(page.input_value("#lon"))) == pytest.approx(CITY_HALL, abs=1e-6)
    context.close()

    # No position in the photo (its EXIF cut short, too) and none from the phone: the citizen places the pin.
    context = browser.new_context(locale="ko-KR", viewport={"width": 390, "height": 844})
    page = context.new_page()
    open_form(page, live_app.url)
    with_gps = jpeg(exif=True)
    cut = with_gps[: with_gps.index(b"Exif") + 40]
    page.set_input_files("#camera", files=[{"name": "cut.jpg", "mimeType": "image/jpeg", "buffer": cut}])
    page.wait_for_selector("#camera-where[data-source=none]")
    assert page.input_value("#lat") == "" and page.locator("#photo-preview img").count() == 1
    context.close()


def test_online_the_servers_refusal_shows_as_a_page_with_the_mistakes_and_nothing_is_kept(live_app, page):
    open_form(page, live_app.url)
    controlled(page)
    page.select_option("#category", POTHOLE)
    page.select_option(f'select[name="attr.{POTHOLE}.size"]', "small")
    page.click("details.coords summary")
    page.fill("#lat", "35.1796")  # outside the city: the server refuses it
    page.fill("#lon", "129.0756")
    page.fill("#title", "Refused online")
    page.click("#submit-report")
    page.wait_for_selector("p.error.summary")
    assert page.input_value("#title") == "Refused online"  # what was typed is kept
    assert stored(live_app.db) == []
    assert (
        page.evaluate(
            """() => new Promise((resolve) => {
          const open = indexedDB.open("smartcity-outbox");
          open.onsuccess = () => {
            const all = open.result.transaction("reports").objectStore("reports").count();
            all.onsuccess = () => resolve(all.result);
          };
        })"""
        )
        == 0
    )
