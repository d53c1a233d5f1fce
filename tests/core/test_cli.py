"""The `smartcity` command, run in-process with Click's runner against a fresh database on each store."""

import getpass
import json
import warnings

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from smartcity.cli import main
from smartcity.core import accounts
from smartcity.core.models import District, Neighbourhood, User
from smartcity.settings import get_settings


@pytest.fixture
def run(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("SMARTCITY_DATABASE_URL", db_url)
    monkeypatch.setenv("SMARTCITY_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["demo"],
        ["migrate"],
        ["init"],
        ["import"],
        ["import", "districts"],
        ["user"],
        ["user", "create"],
        ["apikey"],
    ],
)
def test_every_command_has_help(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_import_boundaries(run, db, boundaries):
    out = run("import", "districts", str(boundaries.districts))
    assert out.exit_code == 0, out.output
    assert "0 added, 25 updated" in out.output
    hoods = len(json.loads(boundaries.neighbourhoods.read_text(encoding="utf-8"))["features"])
    out = run("import", "neighbourhoods", str(boundaries.neighbourhoods))
    assert out.exit_code == 0 and f"{hoods} added" in out.output
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Neighbourhood)) == hoods
        assert not s.scalar(select(func.count()).select_from(District).where(District.approximate))


def test_a_bad_boundary_file_is_refused_with_reasons_and_nothing_changes(run, db, tmp_path, synthetic_dir):
    fc = json.loads((synthetic_dir / "districts.geojson").read_text(encoding="utf-8"))
    fc["features"][3]["geometry"]["coordinates"][0] = fc["features"][3]["geometry"]["coordinates"][0][:3]
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(fc))
    out = run("import", "districts", str(bad))
    assert out.exit_code == 2
    assert "nothing was imported" in out.output and '"feature": 3' in out.output
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(District).where(District.approximate)) == 25
    missing = run("import", "districts", str(tmp_path / "missing.geojson"))
    assert missing.exit_code != 0 and "cannot read" in missing.output


def test_user_commands(run, db):
    out = run(
        "user", "create", "junho", "--role", "staff", "--department", "11230-roads", "--password", "long enough pw"
    )
    assert out.exit_code == 0, out.output
    bad_role = run("user", "create", "x1y2", "--role", "mayor", "--password", "long enough pw")
    assert bad_role.exit_code == 2 and "unknown role 'mayor'" in bad_role.output
    duplicate = run("user", "create", "junho", "--role", "citizen", "--password", "long enough pw")
    assert duplicate.exit_code == 2 and "taken" in duplicate.output
    with warnings.catch_warnings():
        # Asked through click, which hides it on a terminal and reads it from a pipe without a warning
        # (getpass's fallback warned and echoed it).
        warnings.simplefilter("error", getpass.GetPassWarning)
        prompted = run("user", "create", "minji", "--role", "citizen", input="long enough pw\n")
        assert prompted.exit_code == 0, prompted.output
        assert "long enough pw" not in prompted.output
    listing = run("user", "list").output
    assert "junho\tstaff\t11230-roads" in listing and "minji\tcitizen" in listing
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 2
        assert accounts.authenticate(s, "minji", "long enough pw") is not None


def test_api_key_commands(run, db):
    out = run("apikey", "create", "traffic gateway")
    key = out.stdout.strip().splitlines()[0]
    with db.session() as s:
        row = accounts.find_api_key(s, key)
        assert row is not None and row.name == "traffic gateway"
    assert "traffic gateway" in run("apikey", "list").output
    assert run("apikey", "revoke", str(row.id)).exit_code == 0
    with db.session() as s:
        assert accounts.find_api_key(s, key) is None
    assert run("apikey", "revoke", "9999").exit_code == 2


@pytest.mark.parametrize(
    "name, good, bad", [("SAFETY_WRITER", "thread", "proces"), ("SAFETY_OUTSIDE_CITY", "refuse", "maybe")]
)
def test_a_setting_with_choices_refuses_anything_else_by_name(name, good, bad):
    from smartcity.safety.settings import SafetySettings
    from smartcity.settings import Settings

    field = name.removeprefix("SAFETY_").lower()
    assert getattr(Settings.from_env({f"SMARTCITY_{name}": good}).of(SafetySettings), field) == good
    with pytest.raises(ValueError, match=f"SMARTCITY_{name} must be one of .*'{bad}'"):
        Settings.from_env({f"SMARTCITY_{name}": bad}).of(SafetySettings)
