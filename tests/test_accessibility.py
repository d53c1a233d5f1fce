"""Every page, as every role sees it, checked with axe-core (web/node_modules, from npm) in Debian's chromium.

The pages are found, not listed: every GET route the core and the modules declare whose response class is
HTML. A route with a path parameter gets its sample from a link on a page the role already saw (so the
role visits what it would reach by clicking); the unsubscribe page's token comes from a subscription the
test makes. A page that answers with an error (403, 404) or sends to the sign-in page is checked too, once
per role and kind. The test fails listing every serious or critical violation (rule, page, target), and every page
without exactly one h1 or whose first focusable element is not the skip link to #main.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from smartcity.core import pages as core_pages
from smartcity.core.auth import Identity
from smartcity.core.city import load_profile
from smartcity.core.db import Database
from smartcity.core.demo import DEMO_PASSWORD, load_demo
from smartcity.core.module import discover, resolve
from smartcity.opendata import publishing
from tests.conftest import LiveServer, make_settings

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[1] / "web" / "node_modules" / "axe-core" / "axe.min.js"
ROLES = ["anonymous", "citizen", "staff", "publisher", "admin", "guardian", "operator"]
SERIOUS = {"serious", "critical"}
# The first element Tab reaches, as the href it points at (the skip link's is "#main").
SKIP_LINK = """() => {
  const el = document.querySelector('a[href], button, input:not([type=hidden]), select, textarea, [tabindex]');
  return el ? (el.getAttribute('href') || el.outerHTML.slice(0, 60)) : null;
}"""
PARAM = re.compile(r"\{([a-z_]+)(?::[a-z]+)?\}")


def html_routes() -> list[str]:
    """The path of every GET route answering HTML, the core's and each declared module's."""
    routers = [core_pages.router]
    for module in discover():
        for ref in module.routers:
            router = resolve(ref)
            routers.append(router if isinstance(router, APIRouter) else router())
    paths = []
    for router in routers:
        for route in router.routes:
            methods = getattr(route, "methods", None) or set()
            if "GET" in methods and getattr(route, "response_class", None) is HTMLResponse:
                paths.append(route.path)
    return list(dict.fromkeys(paths))


def route_pattern(path: str) -> re.Pattern:
    """The route as a regular expression over a link's path: a parameter is one path segment."""
    parts = PARAM.split(path)
    # split alternates literal text and parameter names; only the literals are escaped
    return re.compile("^" + "".join(re.escape(p) if i % 2 == 0 else "[^/?#.]+" for i, p in enumerate(parts)) + "$")


@pytest.fixture(scope="module")
def demo_site(sqlite_template, tmp_path_factory):
    """A live site with the demo loaded (an account per role, reports, wards, incidents) and a subscription."""
    from smartcity.app import create_app
    from smartcity.reports.notifications import subscribe

    folder = tmp_path_factory.mktemp("a11y")
    shutil.copy(sqlite_template, folder / "smartcity.db")
    url = f"sqlite:///{folder / 'smartcity.db'}"
    db = Database(url)
    app = create_app(make_settings(url, folder), db)
    for _ in load_demo(db, load_profile("seoul")):
        pass
    with db.session() as s:
        token = subscribe(s, "reader@example.org", district="11140").token
    # An open dataset with a table of points and numbers: its pages (preview, map, chart) are reached by links.
    with db.session() as s:
        who = Identity(username="admin", role="admin", via="session")
        publishing.save_dataset(s, who, publishing.DatasetInfo("street-bins", title_ko="가로 쓰레기통", tags=["환경"]))
        table = "번호,위도,경도,용량\n1,37.50,127.03,120\n2,37.51,127.04,80\n".encode()
        publishing.publish_file(s, who, "street-bins", table, "bins.csv")
    with LiveServer(app) as server:
        server.db = db
        server.unsubscribe_token = token
        yield server
    db.dispose()


def run_axe(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v["impact"] in SERIOUS]


def sign_in(page, base: str, username: str) -> None:
    page.goto(base + "/signin?lang=en")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(DEMO_PASSWORD)
    page.locator("form:has(input[name=password]) button[type=submit]").click()
    page.wait_for_selector(".who")


def test_the_route_finder_finds_the_pages_of_every_module():
    paths = html_routes()
    assert "/" in paths and "/reports/new" in paths and "/safety/console" in paths and "/admin/audit" in paths
    assert not any(p.endswith((".json", ".geojson", ".csv")) for p in paths)
    assert route_pattern("/reports/{report_id:int}").match("/reports/12")
    assert not route_pattern("/reports/{report_id:int}").match("/reports/12/submitted")


@pytest.mark.parametrize("lang", ["ko", "en"])
@pytest.mark.parametrize("role", ROLES)
def test_no_serious_axe_violation_on_any_page(demo_site, browser, role, lang):
    assert AXE.exists(), "run `npm ci` in web/ (axe-core is a devDependency)"
    context = browser.new_context(locale="ko-KR", viewport={"width": 390, "height": 844})
    page = context.new_page()
    base = demo_site.url
    if role != "anonymous":
        sign_in(page, base, role)
    routes = html_routes()
    fixed = [p for p in routes if not PARAM.search(p)]
    with_params = [p for p in routes if PARAM.search(p)]
    samples: dict[str, str] = {"/reports/unsubscribe/{token}": f"/reports/unsubscribe/{demo_site.unsubscribe_token}"}
    checked_errors: set[str] = set()
    visited: list[str] = []
    failures: list[str] = []

    def visit(path: str) -> None:
        response = page.goto(f"{base}{path}{'&' if '?' in path else '?'}lang={lang}")
        page.wait_for_load_state("load")
        status = response.status if response else 0
        landed = page.url.split("?")[0].removeprefix(base)
        if status >= 400 or (landed == "/signin" and path != "/signin"):
            kind = f"{status} {landed}"
            if kind in checked_errors:
                return
            checked_errors.add(kind)
        else:
            for href in page.eval_on_selector_all("a[href^='/']", "as => as.map(a => a.getAttribute('href'))"):
                link = href.split("?")[0].split("#")[0]
                for route in with_params:
                    if route not in samples and route_pattern(route).match(link):
                        samples[route] = link
        visited.append(f"{path} → {status}")
        headings = page.locator("h1").count()
        if headings != 1:
            failures.append(f"one-h1 on {path}: {headings} h1 elements")
        first = page.evaluate(SKIP_LINK)
        if first != "#main":
            failures.append(f"skip-link on {path}: the first focusable element is {first!r}, not a link to #main")
        for v in run_axe(page):
            targets = "; ".join(" ".join(node["target"]) for node in v["nodes"][:5])
            failures.append(f"{v['id']} ({v['impact']}) on {path}: {targets}")

    for path in fixed:
        visit(path)
    for route in with_params:
        if route in samples:
            visit(samples[route])
    context.close()
    assert len(visited) >= 5, visited  # the site answered: the test checked pages, not nothing
    assert not failures, f"{role} ({lang}) — serious/critical axe-core violations:\n" + "\n".join(failures)


def pin_centre(page) -> tuple[float, float]:
    box = page.locator("#report-map path.chosen-pin").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_a_pin_is_placed_and_moved_with_the_keyboard_alone(live_app, page):
    page.goto(live_app.url + "/reports/new?lang=en")
    page.wait_for_selector("#report-map[data-state=ready]", timeout=15000)
    assert "arrow keys" in page.get_by_role("region", name="Map: press Enter").get_attribute("aria-label")
    # Tab from the skip link onwards until the map has focus, as a keyboard user would.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#main"
    for _ in range(40):
        if page.evaluate("document.activeElement.id") == "report-map":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "report-map"
    assert page.locator("#report-map path.chosen-pin").count() == 0
    page.keyboard.press("Enter")
    page.wait_for_selector("#report-map[data-inside=true]", timeout=10000)
    box = page.locator("#report-map").bounding_box()
    x, y = pin_centre(page)
    assert abs(x - (box["x"] + box["width"] / 2)) <= 2 and abs(y - (box["y"] + box["height"] / 2)) <= 2
    lat0, lon0 = float(page.locator("#lat").input_value()), float(page.locator("#lon").input_value())

    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowUp")
    page.wait_for_function(f"+document.getElementById('lon').value > {lon0}")
    lat1, lon1 = float(page.locator("#lat").input_value()), float(page.locator("#lon").input_value())
    assert lon1 > lon0 and lat1 > lat0  # east and north
    x1, y1 = pin_centre(page)
    # the pin moved on the screen by the steps (20 px right, 10 px up): the map itself did not pan
    assert abs((x1 - x) - 20) <= 2 and abs((y - y1) - 10) <= 2
    assert page.locator("#report-map").get_attribute("data-inside") == "true"
