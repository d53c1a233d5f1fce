"""Take the README's phone screenshots: each role's main page and the open data plaza, in Korean, at 390×844,
in Debian's chromium.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--role ROLE ...]

Starts `smartcity demo` (the demo accounts, reports, wards and incidents, simulated devices moving) on a
temporary database and free ports, signs in as each role through the sign-in form, and writes
phone-<role>.png (phone-opendata.png, phone-opendata-dataset.png: the plaza and the reports dataset;
phone-proposal-debate.png, phone-vote.png, phone-vote-receipt.png, phone-budget-results.png,
phone-hearing-live.png: participation;
phone-air-map.png, phone-air-sensor.png: air quality;
phone-analytics-hotspots.png, phone-analytics-trends.png, phone-planner-routes.png: the analyst's pages, on a
SYNTHETIC demand set made for the shots and, for the night routes, Seoul's bus stops where ../shared has them,
else a made-up grid of stops). Tiles are off (no internet here), so maps show the platform's own layers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHONE = {"width": 390, "height": 844}
DEMO_PASSWORD = "demo-password"  # core.demo's; read here without importing the package's store machinery


@dataclass(frozen=True)
class Shot:
    """One role's main page: who signs in (None: nobody), where they land, what shows the page is ready."""

    name: str
    username: str | None
    path: str
    ready: str
    # Links followed in turn from `path` (the demo's ids depend on the order modules load): each a selector.
    follow: tuple[str, ...] = ()
    # Scrolled to the top of the screen before the shot (the part of a long page worth showing); "": the top.
    scroll: str = ""
    # Done in turn once `ready` shows (a ballot filled in and cast): (selector, None) clicks the element,
    # (selector, value) chooses the value in a <select>; then `done` shows the page to shoot is there.
    steps: tuple[tuple[str, str | None], ...] = ()
    done: str = ""
    done_s: float = 15.0  # how long `done` may take (an analysis or a route search runs first)


SHOTS = [
    Shot("home", None, "/", "main h1"),
    Shot("citizen", "citizen", "/reports/new", "#report-map[data-state=ready]"),
    Shot("staff", "staff", "/staff/reports", "main table"),
    Shot("admin", "admin", "/admin/users", "main table"),
    Shot("guardian", "guardian", "/safety/guardian", "main h1"),
    Shot("operator", "operator", "/safety/console", "main h1"),
    # The open data plaza and a dataset: the demo's reports, published by the refresh job a few seconds in.
    Shot("opendata", None, "/opendata", "li[data-name]"),
    Shot("opendata-dataset", None, "/opendata/datasets/reports-reports", "li[data-uid] .versions"),
    # Participation (issue 15): a proposal in public debate, an open vote, last year's budget results, and the
    # hearing whose live session runs (ready once its event stream is connected).
    Shot("proposal-debate", "citizen", "/participation/proposals", "main h1", ('a:has-text("마을버스 막차")',)),
    Shot("vote", "citizen", "/participation/votes", "main h1", ('a:has-text("새 공원 이름")',)),
    Shot(
        "budget-results",
        None,
        "/participation/budgets",
        "main table",
        ('a:has-text("(지난해)")', 'a[href$="/results"]'),
    ),
    Shot(
        "hearing-live",
        "citizen",
        "/participation/hearings",
        "#live-state[data-state=live]",
        ('li[data-phase=live] a[href^="/participation/hearings/"]',),
        scroll="#live-state",
    ),
    # The demo citizen (verified) casts the open vote; the receipt page then checks the ballot is counted.
    Shot(
        "vote-receipt",
        "citizen",
        "/participation/votes",
        "form.ballot",
        ('a:has-text("새 공원 이름")',),
        steps=(
            ("form.ballot input[name=q0] >> nth=1", None),
            ("select[name=q1_rank0]", "1"),
            ("select[name=q1_rank1]", "0"),
            ("select[name=q1_rank2]", "2"),
            ("form.ballot button[type=submit]", None),
        ),
        done=".receipt-check[data-counted=yes]",
    ),
    # Air quality (issue 16): the map of sensors by band with the demo's bad district, and one of its sensors.
    Shot("air-map", None, "/air", "#air-map[data-state=ready]"),
    Shot(
        "air-sensor",
        None,
        "/air",
        "#plot-day svg",
        ('#air-sensors tr[data-band=bad] a[href^="/air/sensors/"]',),
        scroll="#plots",
    ),
    # Analytics (issue 17), on the synthetic demand `demo_site` makes: a night hot-spot analysis run from the
    # form, the day-by-day trend with its weekly season, and a night route plan from the form's defaults.
    Shot(
        "analytics-hotspots",
        "analyst",
        "/analytics",
        "#name",
        steps=(("#name", "심야 핫스팟"), ("button.primary", None)),
        done="#analytics-map[data-state=ready]",
        done_s=120.0,
    ),
    Shot("analytics-trends", "analyst", "/analytics/trends", "svg.days-plot", scroll="main h2"),
    Shot(
        "planner-routes",
        "analyst",
        "/analytics/planner",
        "#planner-form",
        steps=(("#planner-form button[type=submit]", None),),
        done="#planner-citymap[data-route-count]",
        done_s=180.0,
    ),
]
SYNTHETIC_ROWS = 300_000
SEOUL_STOPS = ROOT.parent / "shared" / "data" / "seoul" / "bus_stops.csv"
BROWSER_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until the demo answers on `port`; its error output if it ended first (loading the demo takes a while)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the demo ended (exit {process.returncode}):\n{process.stderr.read().decode()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the demo did not answer on port {port} within {timeout:.0f} s")


@contextlib.contextmanager
def demo_site() -> Iterator[str]:
    """`smartcity demo` on a temporary database and free ports; yields its base URL and stops it after."""
    folder = Path(tempfile.mkdtemp(prefix="smartcity-shots-"))
    port = free_port()
    env = {
        **os.environ,
        "SMARTCITY_DATABASE_URL": f"sqlite:///{folder / 'smartcity.db'}",
        "SMARTCITY_VAR_DIR": str(folder),
        "SMARTCITY_PORT": str(port),
        "SMARTCITY_OSMAND_PORT": str(free_port()),
        "SMARTCITY_TILE_URL": "",
        "SMARTCITY_LOG_LEVEL": "warning",
        "SMARTCITY_MQTT_URL": "",
        "SMARTCITY_ANALYTICS_PLANNER_SECONDS": "10",
    }
    # The analyst's pages need demand data and bus stops, which the demo does not make.
    smartcity = [sys.executable, "-m", "smartcity.cli"]
    synthesize = [*smartcity, "analytics", "synthesize", "--rows", str(SYNTHETIC_ROWS), "--days", "1"]
    subprocess.run(synthesize, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    process = subprocess.Popen(
        [*smartcity, "demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process)
        subprocess.run(
            [*smartcity, "import", "places", str(bus_stops(folder))], cwd=ROOT, env=env, check=True, capture_output=True
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def bus_stops(folder: Path) -> Path:
    """Seoul's bus-stop list where the shared data has it, else a grid of made-up stops over the city's centre."""
    if SEOUL_STOPS.exists():
        return SEOUL_STOPS
    path = folder / "bus_stops.csv"
    rows = [
        f"정류소 {i},,{37.45 + (i // 50) * 0.0045:.6f},{126.82 + (i % 50) * 0.0068:.6f},bus_stop,{i:05d}"
        for i in range(2500)
    ]
    path.write_text("name_ko,name_en,lat,lon,kind,ref\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def sign_in(page, base: str, username: str) -> None:
    """Through the sign-in form, as a person would; Korean is asked for by the page address."""
    page.goto(f"{base}/signin?lang=ko")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(DEMO_PASSWORD)
    page.locator("form:has(input[name=password]) button[type=submit]").click()
    page.wait_for_selector(".who")


def take(browser, base: str, shot: Shot, out: Path) -> Path:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    context = browser.new_context(viewport=PHONE, device_scale_factor=1, locale="ko-KR", is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        if shot.username:
            sign_in(page, base, shot.username)
        path = shot.path
        for link in shot.follow:
            page.goto(f"{base}{path}?lang=ko")
            path = page.locator(link).first.get_attribute("href", timeout=15_000) or ""
            if not path.startswith("/"):
                raise SystemExit(f"{shot.name}: the link {link!r} on {page.url} leads to {path!r}")
        deadline = time.monotonic() + 60
        while True:  # a page showing what a job publishes (open data) is looked at again until it is there
            page.goto(f"{base}{path}?lang=ko")
            try:
                page.wait_for_selector(shot.ready, timeout=5_000)
                break
            except PlaywrightTimeout:
                if time.monotonic() > deadline:
                    raise
        for selector, value in shot.steps:
            element = page.locator(selector).first
            if value is None:
                element.click()
            elif element.evaluate("e => e.tagName") == "SELECT":
                element.select_option(value)
            else:
                element.fill(value)
        if shot.done:
            page.wait_for_selector(shot.done, timeout=shot.done_s * 1000)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1000)  # the maps' fit and the live pages' first events
        if shot.scroll:
            page.locator(shot.scroll).first.evaluate("e => e.scrollIntoView({block: 'start'})")
        target = out / f"phone-{shot.name}.png"
        page.screenshot(path=str(target))
        return target
    finally:
        context.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder the PNGs go to")
    parser.add_argument("--role", action="append", choices=[s.name for s in SHOTS], help="only these (repeatable)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    shots = [s for s in SHOTS if not args.role or s.name in args.role]
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with demo_site() as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS, headless=True)
        try:
            for shot in shots:
                target = take(browser, base, shot, args.out)
                print(f"wrote {target} ({target.stat().st_size // 1024} KB)")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
