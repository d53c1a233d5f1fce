"""Helpers the participation tests share (plain functions; fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from smartcity.app import create_app
from smartcity.core.db import Database
from tests.conftest import LiveServer, make_settings
from tests.helpers import BROWSER_TIMEOUT, browser_signin

NOW = "2026-01-01 00:00:00.000000"
PHONE_WIDTH = 390
PHONE = {"locale": "ko-KR", "viewport": {"width": PHONE_WIDTH, "height": 844}}  # a phone in Korean


@contextmanager
def live_server(url: str, tmp_path: Path, **settings) -> Iterator[LiveServer]:
    """The app served on a free port over the store at `url` (jobs off unless asked), its Database as `.db`."""
    db = Database(url)
    app = create_app(make_settings(url, tmp_path, **{"run_jobs": False, **settings}), db)
    try:
        with LiveServer(app) as live:
            live.db = db
            yield live
    finally:
        db.dispose()


class Phones:
    """Phones in Korean, each a browser context of its own signed in as one person; closed together."""

    def __init__(self, browser, server: LiveServer):
        self.browser, self.server, self.contexts = browser, server, []

    def signed_in(self, username: str, then: str):
        """A new phone where `username` has signed in through the form and is looking at the page `then`."""
        context = self.browser.new_context(**PHONE)
        context.set_default_timeout(BROWSER_TIMEOUT)
        self.contexts.append(context)
        page = context.new_page()
        browser_signin(page, self.server, username, then)
        return page

    def anonymous(self, then: str):
        """A new phone where nobody has signed in, looking at the page `then`."""
        context = self.browser.new_context(**PHONE)
        context.set_default_timeout(BROWSER_TIMEOUT)
        self.contexts.append(context)
        page = context.new_page()
        page.goto(self.server.url + then)
        return page

    def __enter__(self) -> Phones:
        return self

    def __exit__(self, *exc) -> None:
        for context in self.contexts:
            context.close()


def fits_the_phone(page) -> bool:
    """Whether nothing on the page is wider than the phone (no sideways scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH


def insert_users_and_a_proposal(connection, usernames: tuple[str, ...]) -> None:
    """Citizens (ids 1, 2, … in order) and one open proposal by the first, written in SQL: for a store
    migrated only part of the way, where the models do not match the tables yet."""
    for name in usernames:
        connection.execute(
            text(
                "INSERT INTO users (username, display_name, password_hash, role, active, created_at)"
                " VALUES (:n, '', 'x', 'citizen', 1, :t)"
            ),
            {"n": name, "t": NOW},
        )
    connection.execute(
        text(
            "INSERT INTO participation_proposals (author_id, title, body, category, status, likes, participants,"
            " created_at, closes_at, hidden) VALUES (1, '제안', '본문', 'other', 'open', 0, 0, :t, :t, 0)"
        ),
        {"t": NOW},
    )
