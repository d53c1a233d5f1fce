"""Device secrets (issue 10.2): the CLI and the guardian page show a new secret once; only its hash is kept;
the OwnTracks app is taken with it and refused with the old one; nobody else can renew it."""

import base64
import re
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import select

from smartcity.core.db import utcnow
from smartcity.safety import service
from smartcity.safety.models import Device, PositionRow
from tests.conftest import signin
from tests.safety.helpers import HOME, make_world

HTML = {"accept": "text/html"}


def owntracks_post(client, secret: str, at):
    """One location as the OwnTracks app posts it in HTTP mode."""
    auth = "Basic " + base64.b64encode(f"haneul:{secret}".encode()).decode()
    return client.post(
        "/owntracks",
        headers={"X-Limit-U": "haneul", "X-Limit-D": "phone", "Authorization": auth},
        json={"_type": "location", "lat": HOME[0], "lon": HOME[1], "tst": int(at.timestamp()), "acc": 10, "tid": "hn"},
    )


def test_the_guardian_page_shows_a_new_secret_once(db, client):
    w = make_world(db, device="haneul/phone", protocols="owntracks")
    signin(client, "mother")
    page = client.get(f"/safety/guardian/{w.person_id}", headers=HTML)
    assert page.status_code == 200 and "haneul/phone" in page.text and 'id="issued-secret"' not in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post(
        f"/safety/guardian/{w.person_id}/devices/{w.device_id}/secret", data={"csrf_token": token}, headers=HTML
    )
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    secret = re.search(r'<code id="issued-secret">([^<]+)</code>', r.text).group(1)
    assert secret != w.secret
    # Shown once: the page again does not carry it; the store keeps only a hash.
    again = client.get(f"/safety/guardian/{w.person_id}", headers=HTML).text
    assert secret not in again
    with db.session() as s:
        kept = s.get(Device, w.device_id).secret_hash
    assert secret not in kept and kept.startswith("$argon2")
    at = utcnow() - timedelta(minutes=1)
    assert owntracks_post(client, w.secret, at).status_code == 401  # the old one no longer works
    assert owntracks_post(client, secret, at).status_code == 200


def test_another_guardian_cannot_renew_a_secret(db, client):
    w = make_world(db, device="haneul/phone", protocols="owntracks")
    signin(client, "stranger")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/safety/guardian", headers=HTML).text).group(1)
    r = client.post(
        f"/safety/guardian/{w.person_id}/devices/{w.device_id}/secret", data={"csrf_token": token}, headers=HTML
    )
    assert r.status_code == 403
    assert owntracks_post(client, w.secret, utcnow() - timedelta(minutes=1)).status_code == 200  # unchanged


def test_the_cli_registers_an_owntracks_device_with_a_secret_shown_once(db, monkeypatch):
    from smartcity.cli import main

    w = make_world(db)
    monkeypatch.setenv("SMARTCITY_DATABASE_URL", db.url)
    from smartcity.settings import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        out = runner.invoke(
            main,
            ["safety", "device-add", "oksun/phone", "--person", str(w.person_id), "--protocols", "osmand,owntracks"],
        )
        assert out.exit_code == 0, out.output
        secret = re.search(r"secret \(shown once[^)]*\): (\S+)", out.output).group(1)
        plain = runner.invoke(main, ["safety", "device-add", "tag-9", "--person", str(w.person_id)])
        assert plain.exit_code == 0 and "secret" not in plain.output
        bad = runner.invoke(
            main, ["safety", "device-add", "tag-10", "--person", str(w.person_id), "--protocols", "carrier-pigeon"]
        )
        assert bad.exit_code != 0
    finally:
        get_settings.cache_clear()
    with db.session() as s:
        device = s.scalar(select(Device).where(Device.identifier == "oksun/phone"))
        assert device.protocol == "osmand,owntracks" and secret not in device.secret_hash
        assert s.scalar(select(Device.secret_hash).where(Device.identifier == "tag-9")) is None
        assert service.ward_devices(s, w.identity(db, w.guardian_id), w.person_id)[1]["has_secret"] is True
        assert s.scalar(select(PositionRow.device_id)) is None
