"""Take the README's screenshots: serve a demo database in-process and photograph pages in chromium.

    .venv/bin/python scripts/screenshots.py [PATH=FILE ...]

Writes docs/screenshots/*.png. Tiles are off (no internet here), so maps show the platform's own layers.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smartcity.app import create_app  # noqa: E402
from smartcity.core.city import load_profile  # noqa: E402
from smartcity.core.db import Database, migrate  # noqa: E402
from smartcity.core.demo import DEMO_PASSWORD, load_demo  # noqa: E402
from smartcity.core.seed import seed_city  # noqa: E402
from smartcity.settings import Settings  # noqa: E402
from tests.conftest import BROWSER_ARGS, LiveServer  # noqa: E402

DEFAULT_SHOTS = {"map.png": ("/", None)}


def main(argv: list[str]) -> None:
    shots = dict(DEFAULT_SHOTS)
    for arg in argv:  # file=path[@user]
        name, _, target = arg.partition("=")
        path, _, user = target.partition("@")
        shots[name] = (path, user or None)
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp}/demo.db"
    migrate(url)
    db = Database(url)
    with db.session() as s:
        seed_city(s, load_profile("seoul"))
    for line in load_demo(db, load_profile("seoul")):
        print(line)
    app = create_app(Settings(database_url=url, var_dir=str(tmp / "var"), secret_key="shots", tile_url=""), db)
    out = ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with LiveServer(app) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        for name, (path, user) in shots.items():
            context = browser.new_context(viewport={"width": 1100, "height": 760}, locale="ko-KR")
            page = context.new_page()
            if user:
                page.goto(server.url + "/signin")
                page.fill("input[name=username]", user)
                page.fill("input[name=password]", DEMO_PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_load_state("networkidle")
            page.goto(server.url + path)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(800)
            page.screenshot(path=str(out / name))
            print("wrote", out / name)
            context.close()
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
