"""Fixtures the whole suite shares.

`db_url` (and so `db`, `app`, `client`) runs each test on SQLite *and* on a throwaway PostgreSQL server.
Each test gets a fresh database copied from a migrated, seeded template. If PostgreSQL cannot be
started, the PostgreSQL variants fail: they are never skipped.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from smartcity.core.city import load_profile
from smartcity.core.db import Database, migrate
from smartcity.core.module import discover
from smartcity.core.seed import seed_city
from smartcity.settings import Settings, describe_class
from tests import synthetic
from tests.servers import MosquittoServer, PostgresServer, free_port, wait_for_port

# Hypothesis' per-example deadline (200 ms) measures the machine, not the code: on a loaded CI machine an
# example can take longer and the test fails as "flaky". Speed is measured in bench/, never in tests.
hypothesis_settings.register_profile("smartcity", deadline=None)
hypothesis_settings.load_profile("smartcity")

SHARED, REAL_DATA_MISSING = synthetic.real_data_dir()  # the real Seoul files, or None and why not
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
    "--disable-sync",
]
_counter = itertools.count()


def seoul_data(name: str) -> Path:
    """A file of the real Seoul data (tests only; the product never reads it). Only tests marked
    `real_data` use it; they are skipped where the folder is missing."""
    if SHARED is None:
        pytest.skip(f"real-data test: {REAL_DATA_MISSING}")
    path = SHARED / name
    if not path.exists():
        pytest.fail(f"real data folder {SHARED} has no {name}")
    return path


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """Every synthetic stand-in for the real files (tests/synthetic.py), under the real files' names."""
    return synthetic.write_all(tmp_path_factory.mktemp("synthetic"))


@dataclass(frozen=True)
class BoundaryFiles:
    districts: Path
    neighbourhoods: Path
    real: bool


@pytest.fixture(scope="module", params=["synthetic", pytest.param("real", marks=pytest.mark.real_data)])
def boundaries(request, tmp_path_factory) -> BoundaryFiles:
    """District and neighbourhood GeoJSON files: the synthetic ones always, the real KOSTAT ones where found."""
    if request.param == "real":
        return BoundaryFiles(seoul_data("districts.geojson"), seoul_data("neighbourhoods.geojson"), True)
    folder = request.getfixturevalue("synthetic_dir")
    return BoundaryFiles(folder / "districts.geojson", folder / "neighbourhoods.geojson", False)


def _prepare(url: str) -> None:
    migrate(url)
    db = Database(url)
    with db.session() as s:
        seed_city(s, load_profile("seoul"))
    db.dispose()


# With pytest-xdist (`make test` runs `-n`), the controlling process starts one PostgreSQL server for the
# run and every worker uses it: each worker makes its own template and databases in it, named by the worker.
_SHARED_POSTGRES = pytest.StashKey[PostgresServer]()
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def _start_postgres() -> PostgresServer:
    server = PostgresServer()
    try:
        return server.start()
    except Exception as exc:  # noqa: BLE001 - report why, then fail every PostgreSQL test
        shutil.rmtree(server.root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc} {getattr(exc, 'stderr', b'')!r}") from exc


def pytest_configure(config):
    workers = config.getoption("numprocesses", None)
    if workers and not hasattr(config, "workerinput"):  # the xdist controller, before its workers start
        try:
            config.stash[_SHARED_POSTGRES] = _start_postgres()
        except RuntimeError as exc:  # the workers start their own and fail their PostgreSQL tests with why
            print(exc)


def pytest_configure_node(node):
    server = node.config.stash.get(_SHARED_POSTGRES, None)
    if server is not None:
        node.workerinput["smartcity_postgres"] = server.shared()


def pytest_unconfigure(config):
    server = config.stash.get(_SHARED_POSTGRES, None)
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def postgres(request):
    shared = getattr(request.config, "workerinput", {}).get("smartcity_postgres")
    if shared:
        yield PostgresServer(**shared)
        return
    try:
        server = _start_postgres()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    _prepare(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres) -> str:
    name = f"template_smartcity{_WORKER}"
    postgres.execute(f"CREATE DATABASE {name}")
    _prepare(postgres.url(name))
    return name


def _fresh_sqlite(template: Path, tmp_path: Path) -> str:
    path = tmp_path / "smartcity.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


def _fresh_postgres(request) -> str:
    server = request.getfixturevalue("postgres")
    template = request.getfixturevalue("postgres_template")
    name = f"t{os.getpid()}_{next(_counter)}"
    server.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    request.addfinalizer(lambda: server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    return server.url(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """A fresh, migrated and seeded database on each backend."""
    if request.param == "sqlite":
        return _fresh_sqlite(request.getfixturevalue("sqlite_template"), tmp_path)
    return _fresh_postgres(request)


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path) -> str:
    """A fresh SQLite database, for tests about pages or protocols rather than storage."""
    return _fresh_sqlite(sqlite_template, tmp_path)


@pytest.fixture
def postgres_url(request) -> str:
    return _fresh_postgres(request)


def _let_go(database: Database) -> None:
    """Wait for the background work a test left running on `database` (a load it did not follow to its end)
    before the store goes: work still writing into a dropped database fails in the next test's time."""
    from smartcity.core.jobs import wait_for_background

    left = wait_for_background(database, timeout=60)
    database.dispose()
    if left:
        pytest.fail(f"background work still running after the test: {', '.join(left)}")


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    _let_go(database)


def make_settings(url: str, tmp_path: Path, **overrides) -> Settings:
    """Settings for a test: the core's fields by name, a module's by its variable's name in lower case without
    SMARTCITY_ (safety_writer is SMARTCITY_SAFETY_WRITER), put in the environment the modules read theirs from."""
    values: dict = dict(database_url=url, var_dir=str(tmp_path / "var"), secret_key="test-secret", tile_url="")
    # No OsmAnd port, and the writer in a thread: the writer process is tested in tests/safety/test_writer.py.
    env = {"SMARTCITY_OSMAND_PORT": "0", "SMARTCITY_SAFETY_WRITER": "thread"}
    core = {f.name for f in fields(Settings) if "help" in f.metadata}
    known = {name for m in discover() if m.settings for name, _, _ in describe_class(m.settings, m.env_prefix)}
    for name, value in overrides.items():
        if name in core:
            values[name] = value
        elif f"SMARTCITY_{name.upper()}" in known:
            env[f"SMARTCITY_{name.upper()}"] = str(value)
        else:
            raise TypeError(f"no setting {name!r}")
    return Settings(**values, env=env)


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return make_settings(db_url, tmp_path)


@pytest.fixture
def app(db, settings):
    from smartcity.app import create_app

    return create_app(settings, db)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


# --- people ---------------------------------------------------------------------------------------

PASSWORD = "correct horse battery"


def make_user(db, username: str, role: str, department: str | None = None, **extra):
    from smartcity.core import accounts

    with db.session() as s:
        user = accounts.create_user(s, accounts.NewUser(username, PASSWORD, role, department=department, **extra))
        return user.id


def make_key(db, username: str | None = None, scope: str = "api") -> str:
    from smartcity.core import accounts

    with db.session() as s:
        owner = accounts.get_user(s, username) if username else None
        _, key = accounts.create_api_key(s, f"test key {next(_counter)}", user=owner, scope=scope)
        return key


def signin(client, username: str, password: str = PASSWORD):
    """Sign in through the real form, CSRF token included."""
    import re

    page = client.get("/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/signin",
        data={"username": username, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )


# --- a live server and a real browser -------------------------------------------------------------


class LiveServer:
    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A stream a page left open is cut after 5 s at the stop, which then runs the app's own (lifespan).
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", timeout_graceful_shutdown=5
        )
        self.app = app
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_for_port(self.port)
        # On PostgreSQL events reach this process only through LISTEN, which the app starts beside accepting
        # connections: an event a test publishes before it listens is lost (CI, stop 25: an asset's change never
        # reached the open data feeds).
        db = getattr(getattr(self.app, "state", None), "db", None)
        if db is not None and db.is_postgres:
            assert db.events.listening.wait(30), "the live server never listened for events"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        # Its stop waits for the scheduler's job and the background work to end (core.jobs): give it time.
        self.thread.join(60)


@pytest.fixture
def live_app(sqlite_url, tmp_path):
    from smartcity.app import create_app

    db = Database(sqlite_url)
    app = create_app(make_settings(sqlite_url, tmp_path), db)
    with LiveServer(app) as server:
        server.db = db
        yield server
    _let_go(db)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=BROWSER_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="ko-KR", viewport={"width": 390, "height": 844})
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture(scope="session")
def mosquitto():
    server = MosquittoServer()
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"could not start mosquitto: {exc}")
    yield server
    server.stop()


@pytest.fixture
def demo_lines(db) -> list[str]:
    """The whole demo (every module's) loaded into `db` as `smartcity demo` does, before it serves: what it
    said. Ask for it before `client`, so no job of a running app writes beside the loader (on SQLite a long
    job transaction made the loader wait out its busy timeout)."""
    from smartcity.core.demo import load_demo

    return list(load_demo(db, load_profile("seoul")))


@pytest.fixture
def push_service():
    """A web push service on a port of its own (tests/servers.PushService): what it received, decryptable."""
    from tests.servers import PushService

    service = PushService().start()
    yield service
    service.stop()


def eventually(check, timeout: float = 30.0, interval: float = 0.02):
    """Poll `check` until it returns a truthy value; fail with its last result after `timeout` seconds. The
    timeout is for what never comes (a passing test waits only as long as its condition takes): on CI's two
    busy cores a server's answer took several seconds."""
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s (last: {result!r})")


# --- what ran against real servers, said at the end of every run ----------------------------------

_REAL = {"postgres": "PostgreSQL", "browser": "chromium", "mqtt": "Mosquitto"}


def pytest_terminal_summary(terminalreporter):
    counts = {name: {} for name in _REAL}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") not in ("call", "setup"):
                continue
            if outcome == "passed" and report.when != "call":
                continue
            keywords = getattr(report, "keywords", {})
            for marker in _REAL:
                if marker in keywords:
                    counts[marker][outcome] = counts[marker].get(outcome, 0) + 1
    parts = []
    for marker, label in _REAL.items():
        c = counts[marker]
        parts.append(f"{label}: " + (", ".join(f"{n} {o}" for o, n in sorted(c.items())) or "none ran"))
    terminalreporter.write_sep("-", "real servers: " + "; ".join(parts))
    _real_data_summary(terminalreporter)


def _real_data_summary(terminalreporter) -> None:
    """Say plainly whether the tests on the real Seoul files ran (CI has them; a bare clone does not)."""
    outcomes: dict[str, int] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            # A test that calls seoul_data() without the marker is skipped with the same reason: count it too.
            skipped_for_it = outcome == "skipped" and "real-data test:" in str(getattr(report, "longrepr", ""))
            if ("real_data" in getattr(report, "keywords", {}) or skipped_for_it) and (
                report.when == "call" or (outcome != "passed" and report.when == "setup")
            ):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
    counted = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "none selected"
    if SHARED is None:
        terminalreporter.write_sep("-", f"real-data tests NOT run: {REAL_DATA_MISSING}; {counted}")
    else:
        terminalreporter.write_sep("-", f"real-data tests run on {SHARED}: {counted}")


def pytest_collection_modifyitems(items):
    """Mark tests by the real servers their fixtures start, so the summary above counts them all; skip
    the tests on the real Seoul files where they are not found (unless SMARTCITY_REQUIRE_REAL_DATA=1)."""
    if SHARED is None and any("real_data" in item.keywords for item in items):
        if os.environ.get("SMARTCITY_REQUIRE_REAL_DATA") == "1":
            raise pytest.UsageError(f"SMARTCITY_REQUIRE_REAL_DATA=1 but {REAL_DATA_MISSING}")
        skip = pytest.mark.skip(reason=f"real-data test: {REAL_DATA_MISSING}")
        for item in items:
            if "real_data" in item.keywords:
                item.add_marker(skip)
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"page", "browser"}:
            item.add_marker(pytest.mark.browser)
        if "mosquitto" in names:
            item.add_marker(pytest.mark.mqtt)
        if names & {"postgres", "postgres_url", "postgres_template"}:
            item.add_marker(pytest.mark.postgres)
