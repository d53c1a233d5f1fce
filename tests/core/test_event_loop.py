"""The event loop stays free while a request waits on the store: handlers that write or hash a password run
in the thread pool, so health checks and live streams are answered meanwhile (on a real uvicorn server)."""

from __future__ import annotations

import re
import threading

import httpx
from sqlalchemy import event, select

from smartcity.core.models import User
from tests.conftest import PASSWORD, LiveServer, make_user


class StoreGate:
    """Holds the first statement that matches `pattern` on the app's real engine until released: a store
    operation that is slow for as long as the test wants."""

    def __init__(self, engine, pattern: str):
        self.engine, self.pattern = engine, re.compile(pattern, re.IGNORECASE)
        self.reached, self.release = threading.Event(), threading.Event()

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.pattern.search(statement) and not self.reached.is_set():
            self.reached.set()
            self.release.wait(30)

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._before)
        return self

    def __exit__(self, *exc):
        # Only released here: the held statement's thread is still going through the engine's listeners, so
        # removing this one now would change them under it. It lets everything through from now on.
        self.release.set()


def _signed_in(base: str, username: str) -> httpx.Client:
    http = httpx.Client(base_url=base, timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/signin").text).group(1)
    answer = http.post("/signin", data={"username": username, "password": PASSWORD, "csrf_token": token, "next": "/"})
    assert answer.status_code == 303
    return http


def test_health_is_answered_while_an_account_is_being_stored(app, db):
    make_user(db, "admin1", "admin")
    with LiveServer(app) as server:
        http = _signed_in(server.url, "admin1")
        token = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/admin/users").text).group(1)
        outcome: dict[str, httpx.Response] = {}

        def create() -> None:
            outcome["post"] = http.post(
                "/admin/users",
                data={
                    "csrf_token": token,
                    "username": "clerk9",
                    "password": "a long enough password",
                    "role": "citizen",
                    "display_name": "Clerk Nine",
                },
            )

        with StoreGate(db.engine, r"^\s*INSERT INTO users\b") as gate:
            poster = threading.Thread(target=create)
            poster.start()
            assert gate.reached.wait(20), "the account was never written"
            # The POST is held inside its INSERT; a handler doing that on the event loop would hold the loop too,
            # and this request would not be answered until the timeout.
            with httpx.Client(base_url=server.url, timeout=10) as other:
                health = other.get("/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert poster.is_alive() and "post" not in outcome  # answered before the held request finished
        poster.join(30)
        assert outcome["post"].status_code == 303
    with db.session() as s:
        assert s.scalar(select(User.display_name).where(User.username == "clerk9")) == "Clerk Nine"
