"""`smartcity serve`: a taken port stops the start with one line naming the setting to change, and the links
the site writes carry the address it is served at unless a public URL is set."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from smartcity.app import create_app
from tests.conftest import make_settings
from tests.servers import free_port, wait_for_port

SMARTCITY = str(Path(sys.executable).parent / "smartcity")


def _env(tmp_path: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    env.update(
        SMARTCITY_DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}",
        SMARTCITY_VAR_DIR=str(tmp_path / "var"),
        SMARTCITY_SECRET_KEY="test-secret",
        SMARTCITY_SAFETY_WRITER="thread",
        SMARTCITY_TILE_URL="",
    )
    env.update(variables)
    return env


def _held() -> socket.socket:
    """A port some other program is listening on."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


@pytest.mark.parametrize("variable", ["SMARTCITY_PORT", "SMARTCITY_OSMAND_PORT"])
def test_a_taken_port_stops_the_start_with_one_line_naming_its_setting(tmp_path, variable):
    with _held() as holder:
        taken = holder.getsockname()[1]
        ports = {"SMARTCITY_PORT": str(free_port()), "SMARTCITY_OSMAND_PORT": str(free_port()), variable: str(taken)}
        run = subprocess.run(
            [SMARTCITY, "serve"], env=_env(tmp_path, **ports), capture_output=True, text=True, timeout=60
        )
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"port {taken} " in lines[0] and "in use" in lines[0] and variable in lines[0]
    other = ({"SMARTCITY_PORT", "SMARTCITY_OSMAND_PORT"} - {variable}).pop()
    assert other not in lines[0]


def test_the_port_option_is_checked_too(tmp_path):
    with _held() as holder:
        taken = holder.getsockname()[1]
        run = subprocess.run(
            [SMARTCITY, "serve", "--port", str(taken)],
            env=_env(tmp_path, SMARTCITY_OSMAND_PORT="0"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert f"port {taken} " in run.stderr and "SMARTCITY_PORT" in run.stderr


def test_links_follow_the_port_served_unless_a_public_url_is_set(db, tmp_path):
    with TestClient(create_app(make_settings(db.url, tmp_path, port=9137), db)) as client:
        contact = client.get("/open311/v2/discovery.json").json()["contact"]
    assert "http://127.0.0.1:9137/reports" in contact
    settings = make_settings(db.url, tmp_path, port=9137, reports_public_url="https://map.example.org/")
    with TestClient(create_app(settings, db)) as client:
        contact = client.get("/open311/v2/discovery.json").json()["contact"]
    assert "https://map.example.org/reports" in contact and "9137" not in contact


def test_a_served_site_links_to_the_port_given_on_the_command_line(sqlite_url, tmp_path):
    port = free_port()
    env = _env(tmp_path, SMARTCITY_DATABASE_URL=sqlite_url, SMARTCITY_OSMAND_PORT="0")
    server = subprocess.Popen(
        [SMARTCITY, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, timeout=60)
        contact = httpx.get(f"http://127.0.0.1:{port}/open311/v2/discovery.json", timeout=30).json()["contact"]
        assert f"http://127.0.0.1:{port}/reports" in contact
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_demo_says_a_taken_port_before_loading_anything(tmp_path):
    with _held() as holder:
        taken = holder.getsockname()[1]
        run = subprocess.run(
            [SMARTCITY, "demo"],
            env=_env(tmp_path, SMARTCITY_PORT=str(taken), SMARTCITY_OSMAND_PORT="0"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert f"port {taken} " in run.stderr and "SMARTCITY_PORT" in run.stderr
    assert not (tmp_path / "serve.db").exists()  # nothing was set up for a demo that cannot be served
