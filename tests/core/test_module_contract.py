"""The module contract (core.module): a module is a folder with one declaration; core reads it and names no
module. tests/plugin_example is such a folder, plugged in without a change to core."""

import html
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from smartcity.core import audit
from smartcity.core.jobs import Scheduler
from smartcity.core.module import Module, datasets, discover, jobs
from tests import plugin_example
from tests.conftest import eventually, make_settings, make_user, signin

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "smartcity"
BUNDLED = ("analytics", "assets", "opendata", "participation", "reports", "safety", "sensing")


def _app(db, settings, monkeypatch, greeting: str = "annyeong"):
    from smartcity.app import create_app

    # A module's settings come from the environment the app's settings were read from.
    configured = settings.with_env(SMARTCITY_EXAMPLE_GREETING=greeting)
    return create_app(configured, db, modules=[*discover(""), plugin_example.module])


def test_discovery_finds_every_bundled_module_and_only_those_asked_for():
    assert tuple(m.name for m in discover("")) == BUNDLED
    chosen = discover("smartcity.safety, tests.plugin_example:module")
    assert [m.name for m in chosen] == ["safety", "example"]
    with pytest.raises(ValueError, match="two modules are named"):
        discover("smartcity.safety,smartcity.safety:module")
    with pytest.raises(TypeError, match="not a smartcity Module"):
        discover("smartcity.core.auth:Identity")


def test_a_module_plugs_in_a_route_a_role_a_setting_and_an_error_format(db, settings, monkeypatch):
    app = _app(db, settings, monkeypatch)
    make_user(db, "gerda", "gardener")  # a role core has never heard of
    make_user(db, "kim", "citizen")
    with TestClient(app) as client:
        assert client.get("/example/greeting").status_code == 401
        signin(client, "kim")
        assert client.get("/example/greeting").status_code == 403
        assert "/example/greeting" not in client.get("/").text  # the nav link is for gardeners
    with TestClient(app) as client:
        signin(client, "gerda")
        answer = client.get("/example/greeting")
        assert answer.status_code == 200
        assert answer.json() == {"greeting": "annyeong, gerda", "plots": 3}  # SMARTCITY_EXAMPLE_GREETING
        assert 'href="/example/greeting"' in client.get("/").text
        missing = client.get("/example/plots/7")
    assert missing.status_code == 404
    assert missing.text == "example says no: not_found\n"  # the module's own error format
    # The bundled modules are still there, beside it.
    assert TestClient(app).get("/open311/v2/services.json").status_code == 200


def test_a_module_job_runs_with_its_own_settings(db, settings, monkeypatch):
    app = _app(db, settings, monkeypatch, greeting="salut")
    names = {j.name for j in jobs(app.state.context.modules)}
    assert {"notifications", "reports.retention", "safety.retention", "example.tick"} <= names
    tick = [j for j in jobs(app.state.context.modules) if j.name == "example.tick"]
    Scheduler(db, settings, tick).run_due()
    with db.session() as s:
        entries = audit.entries(s, object_type="example")
    assert [(e.action, e.detail) for e in entries] == [("tick", {"greeting": "salut"})]


def test_a_module_event_handler_hears_events_after_commit(db, settings, monkeypatch):
    from smartcity.core.events import publish

    app = _app(db, settings, monkeypatch, greeting="hallo")

    def heard():
        with db.session() as s:
            return [(e.object_id, e.detail) for e in audit.entries(s, object_type="example") if e.action == "heard"]

    with TestClient(app):  # the app's event bus runs (PostgreSQL: its LISTEN connection)
        assert db.events.listening.wait(10), "the event bus never started listening"
        with db.session() as s:
            publish(s, "example.planted", {"plot": 4})
            publish(s, "other.planted", {"plot": 5})  # not under the handler's prefix
        eventually(lambda: heard() == [("4", {"greeting": "hallo"})])
        with pytest.raises(RuntimeError), db.session() as s:
            publish(s, "example.planted", {"plot": 6})
            raise RuntimeError("rolled back: the event never happened")
        with db.session() as s:
            publish(s, "example.planted", {"plot": 7})  # delivered in order: after 6, had 6 been
        eventually(lambda: len(heard()) >= 2)
    assert sorted(plot for plot, _ in heard()) == ["4", "7"]


def test_datasets_are_gathered_under_their_module_name(db):
    found = datasets([*discover(""), plugin_example.module])
    mine = [d for d in found if d.module == "example"]
    assert [d.name for d in mine] == ["example.plots"]
    with db.session() as s:
        assert list(mine[0].rows(s)) == [{"plot": 1}, {"plot": 2}, {"plot": 3}]


def _smartcity(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "smartcity.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_settings_and_commands_of_a_module_reach_the_cli(sqlite_url, tmp_path):
    env = {
        **os.environ,
        "SMARTCITY_DATABASE_URL": sqlite_url,
        "SMARTCITY_VAR_DIR": str(tmp_path / "var"),
        "SMARTCITY_MODULES": "smartcity.reports,smartcity.safety,smartcity.assets,tests.plugin_example",
        "SMARTCITY_EXAMPLE_GREETING": "hej",
    }
    listed = _smartcity("settings", env=env)
    assert listed.returncode == 0, listed.stderr
    assert re.search(
        r"^SMARTCITY_EXAMPLE_GREETING\n    default: hello\n    What the example module says", listed.stdout, re.M
    )
    assert "SMARTCITY_DATABASE_URL" in listed.stdout and "SMARTCITY_EXAMPLE_PLOTS" in listed.stdout
    hello = _smartcity("example", "hello", env=env)
    assert (hello.returncode, hello.stdout) == (0, "hej\n")
    # Without the module, neither its command nor its settings exist.
    env["SMARTCITY_MODULES"] = ""
    assert _smartcity("example", "hello", env=env).returncode == 2
    assert "SMARTCITY_EXAMPLE_GREETING" not in _smartcity("settings", env=env).stdout


def test_nothing_registers_at_import_time():
    """Importing the modules declares nothing; declaring them adds their roles, grants and personal topics."""
    script = """
import smartcity.assets, smartcity.reports, smartcity.safety
from smartcity.core import accounts, auth, events
before = (dict(auth.PERMISSIONS), "guardian" in accounts.ROLES, "control_room" in accounts.UNIT_KINDS,
          events.may_carry_personal(()))
from smartcity.core.module import declared
names = [m.name for m in declared()]
after = (sorted(auth.PERMISSIONS["safety.guard"]), "guardian" in accounts.ROLES,
         accounts.UNIT_KIND["operator"], events.may_carry_personal(()), sorted(auth.PERMISSIONS["reports.create"]))
print(before, names, after)
"""
    env = {**os.environ, "SMARTCITY_MODULES": ""}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "({}, False, False, False) "
        "['analytics', 'assets', 'opendata', 'participation', 'reports', 'safety', 'sensing'] "
        "(['guardian'], True, 'control_room', True, "
        "['analyst', 'citizen', 'data_publisher', 'guardian', 'operator', 'publisher', 'staff'])"
    )


def test_importing_every_file_of_the_modules_leaves_cores_registries_unchanged():
    """Not only a module's package: its routes and pages too (they are imported when an app is built, and a
    registration there would outlive that app and reach apps built without the module)."""
    script = """
import importlib, pkgutil
from smartcity.core import accounts, auth, events, pages, web
from smartcity.core.module import discover

def registries():
    return (list(web.NAV), list(pages.HOME_ACTIONS), list(pages.HOME_PINS), dict(auth.PERMISSIONS),
            dict(accounts.ROLES), dict(accounts.UNIT_KINDS), dict(accounts.UNIT_KIND), events.may_carry_personal(()))

before = registries()
imported = 0
for m in discover(""):
    package = importlib.import_module(f"smartcity.{m.name}")
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if ".migrations" not in info.name:  # Alembic revisions run only under Alembic
            importlib.import_module(info.name)
            imported += 1
changed = [i for i, (b, a) in enumerate(zip(before, registries())) if b != a]
print(imported > 30, changed, registries()[1:3])
"""
    env = {**os.environ, "SMARTCITY_MODULES": ""}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True [] ([], [])"


def test_the_home_page_shows_what_the_modules_declare(client):
    """The modules declare the home page's actions and pins; the app built with them shows every one, each
    module's in its declared order (reports and opendata both declare actions)."""
    page = client.get("/?lang=en").text
    declared = discover("smartcity.reports")[0]
    actions = re.search(r'<p class="home-actions">(.*?)</p>', page, re.S)
    assert actions, page
    shown = re.findall(r'href="([^"]+)"', actions.group(1))
    modules = client.app.state.context.modules
    assert sorted(shown) == sorted(a.href for m in modules for a in m.home_actions)
    for m in modules:
        mine = [a.href for a in m.home_actions]
        assert [href for href in shown if href in mine] == mine, m.name
    assert declared.home_pins and all(url in html.unescape(page) for url in declared.home_pins)


def test_core_names_no_module_and_modules_use_no_cli_internals():
    module_names = [m.name for m in discover("")]
    core_files = [p for p in (SRC / "core").rglob("*.py") if "migrations" not in p.parts]
    for path in core_files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"smartcity\.app\b|from smartcity import app", text), path
        for name in module_names:
            assert f"smartcity.{name}" not in text, (path, name)
        for declared_by_a_module in ("guardian", "operator", "control_room"):
            assert f'"{declared_by_a_module}"' not in text, (path, declared_by_a_module)
    for name in module_names:
        for path in (SRC / name).rglob("*.py"):
            assert not re.search(r"smartcity\.cli\b", path.read_text(encoding="utf-8")), path


def test_every_bundled_module_is_a_declaration():
    for m in discover(""):
        assert isinstance(m, Module)
        assert m.models and m.routers, m.name


def test_safety_uses_the_apps_city_profile_not_the_environments(db, tmp_path, monkeypatch):
    """Regression: the safety service re-read the profile named by the environment for each event; the app's
    profile (here a city on Honolulu time) is the one that decides where "today" starts."""
    from smartcity.app import create_app
    from smartcity.core.auth import identity_of_user
    from smartcity.core.models import User
    from smartcity.safety import service
    from smartcity.safety.models import PositionRow

    seoul = (SRC / "cities" / "seoul.toml").read_text(encoding="utf-8")
    profile = tmp_path / "honolulu-time.toml"
    profile.write_text(seoul.replace('timezone = "Asia/Seoul"', 'timezone = "Pacific/Honolulu"'), encoding="utf-8")
    monkeypatch.delenv("SMARTCITY_CITY", raising=False)
    create_app(make_settings(db.url, tmp_path, city=str(profile)), db)

    guardian = make_user(db, "mother", "guardian")
    now = datetime.now(UTC)
    midnights = sorted(
        datetime.now(ZoneInfo(tz)).replace(hour=0, minute=0, second=0, microsecond=0)
        for tz in ("Asia/Seoul", "Pacific/Honolulu")
    )
    between = midnights[0] + (midnights[1] - midnights[0]) / 2  # today in one city, not yet in the other
    honolulu_midnight = datetime.now(ZoneInfo("Pacific/Honolulu")).replace(hour=0, minute=0, second=0, microsecond=0)
    with db.session() as s:
        person = service.add_person(s, "child", "Kim Haneul", actor="test")
        device = service.add_device(s, person.id, "phone-9", "osmand", actor="test")
        service.link_guardian(s, person.id, guardian, "mother", actor="test")
        service.record_consent(s, person.id, guardian, given_by="the mother", basis="form 1", actor="test")
        for at in (between, now - timedelta(minutes=1)):
            s.add(
                PositionRow(
                    device_id=device.id,
                    person_id=person.id,
                    fix_time=at,
                    received_at=at,
                    lat=37.5,
                    lon=127.05,
                    protocol="test",
                    outside_city=False,
                )
            )
    with db.session() as s:
        who = identity_of_user(s.get(User, guardian), "session")
        seen = service.track(s, who, person.id)
    expected = 2 if between >= honolulu_midnight else 1
    assert len(seen) == expected
