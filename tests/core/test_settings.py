"""Settings: the core's own, each module's in its own class, all read from one environment under the names
deployments already use."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from smartcity.core.module import discover
from smartcity.reports.settings import ReportsSettings
from smartcity.safety.settings import SafetySettings
from smartcity.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MODULE_WORDS = ("safety_", "reports_", "open311_", "osmand_", "mqtt_")


def test_the_core_settings_hold_no_module_setting():
    own = [f.name for f in fields(Settings) if f.name.startswith(MODULE_WORDS)]
    assert own == []
    declared = {m.name: m.settings for m in discover("")}
    assert declared["reports"] is ReportsSettings and declared["safety"] is SafetySettings


@pytest.mark.parametrize(
    "variable, cls, field, raw, value",
    [
        ("SMARTCITY_SAFETY_RETENTION_DAYS", SafetySettings, "retention_days", "7", 7),
        ("SMARTCITY_SAFETY_LIVE_POSITIONS", SafetySettings, "live_positions", "off", False),
        ("SMARTCITY_SAFETY_OUTSIDE_CITY", SafetySettings, "outside_city", "refuse", "refuse"),
        ("SMARTCITY_OSMAND_PORT", SafetySettings, "osmand_port", "5056", 5056),
        ("SMARTCITY_MQTT_URL", SafetySettings, "mqtt_url", "mqtt://broker:1883", "mqtt://broker:1883"),
        ("SMARTCITY_MQTT_INFLIGHT", SafetySettings, "mqtt_inflight", "20", 20),
        ("SMARTCITY_REPORTS_PUBLIC_URL", ReportsSettings, "public_url", "https://map.example", "https://map.example"),
        ("SMARTCITY_REPORTS_MAX_PHOTOS", ReportsSettings, "max_photos", "2", 2),
        ("SMARTCITY_REPORTS_ALLOW_ANONYMOUS", ReportsSettings, "allow_anonymous", "false", False),
        (
            "SMARTCITY_OPEN311_CORS_ORIGINS",
            ReportsSettings,
            "open311_cors_origins",
            "https://a.example",
            "https://a.example",
        ),
    ],
)
def test_a_module_setting_is_read_from_its_variable_of_before(variable, cls, field, raw, value):
    settings = Settings.from_env({variable: raw})
    assert getattr(settings.of(cls), field) == value
    assert getattr(Settings.from_env({}).of(cls), field) != value  # the default is something else


def test_a_module_setting_of_the_wrong_kind_is_refused_by_its_variable_name():
    with pytest.raises(ValueError, match=r"SMARTCITY_REPORTS_MAX_PHOTOS must be a number \(int\), not 'six'"):
        Settings.from_env({"SMARTCITY_REPORTS_MAX_PHOTOS": "six"}).of(ReportsSettings)


def test_an_app_with_a_bad_module_setting_does_not_start(db, settings):
    from smartcity.app import create_app

    with pytest.raises(ValueError, match="SMARTCITY_SAFETY_WRITER must be one of process, thread, not 'both'"):
        create_app(settings.with_env(SMARTCITY_SAFETY_WRITER="both"), db)


def test_the_app_hands_its_services_the_module_settings_of_its_environment(db, settings):
    from smartcity.app import create_app

    app = create_app(settings.with_env(SMARTCITY_REPORTS_PUBLIC_URL="https://reports.example.org"), db)
    assert app.state.context.settings_of(ReportsSettings).public_url == "https://reports.example.org"
    assert db.context is app.state.context  # what the services read through their store


def test_smartcity_settings_lists_the_core_then_each_module_under_its_name(tmp_path):
    env = {**os.environ, "SMARTCITY_VAR_DIR": str(tmp_path / "var"), "SMARTCITY_MODULES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "smartcity.cli", "settings"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    groups = re.findall(r"^\[(\w+)\]$", done.stdout, re.M)
    assert groups[0] == "core" and {"reports", "safety"} <= set(groups)
    sections = dict(zip(groups, re.split(r"^\[\w+\]$", done.stdout, flags=re.M)[1:], strict=True))
    assert "SMARTCITY_DATABASE_URL" in sections["core"] and "SMARTCITY_SAFETY_" not in sections["core"]
    for name in ("SMARTCITY_SAFETY_RETENTION_DAYS", "SMARTCITY_OSMAND_PORT", "SMARTCITY_MQTT_URL"):
        assert re.search(rf"^{name}\n    default: ", sections["safety"], re.M), name
    for name in ("SMARTCITY_REPORTS_PUBLIC_URL", "SMARTCITY_OPEN311_CORS_ORIGINS"):
        assert re.search(rf"^{name}\n    default: ", sections["reports"], re.M), name
