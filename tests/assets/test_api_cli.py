"""The asset registry's JSON API (public reads, admin writes) and `smartcity import assets`."""

from click.testing import CliRunner
from sqlalchemy import func, select

from smartcity.assets.models import Asset
from tests import synthetic
from tests.conftest import make_key, make_user


def test_public_reads_and_admin_writes(client, db):
    make_user(db, "boss", "admin")
    make_user(db, "kim", "citizen")
    admin, citizen = make_key(db, "boss"), make_key(db, "kim")
    body = {"kind": "cctv", "lat": 37.5172, "lon": 127.0473, "name": "Gangnam-gu office"}
    assert client.post("/api/assets", json=body).status_code == 401
    assert client.post("/api/assets", json=body, headers={"X-API-Key": citizen}).status_code == 403
    r = client.post("/api/assets", json=body, headers={"X-API-Key": admin})
    assert r.status_code == 201, r.text
    asset_id = r.json()["id"]
    assert r.json()["district"] == "11230"
    again = client.post("/api/assets", json=body, headers={"X-API-Key": admin})
    assert again.status_code == 409
    outside = client.post("/api/assets", json=body | {"lat": 35.18, "lon": 129.07}, headers={"X-API-Key": admin})
    assert outside.status_code == 422 and outside.json()["error"]["code"] == "outside_city"

    listed = client.get("/api/assets", params={"kind": "cctv", "bbox": "127.0,37.5,127.1,37.55"}).json()
    assert [a["id"] for a in listed["assets"]] == [asset_id]
    gj = client.get("/api/assets.geojson", params={"kind": "cctv"})
    assert gj.headers["content-type"].startswith("application/geo+json")
    assert gj.json()["features"][0]["geometry"]["type"] == "Point"
    near = client.get("/api/assets/nearest", params={"lat": 37.5173, "lon": 127.0473, "k": 3}).json()
    assert near["nearest"][0]["id"] == asset_id and near["nearest"][0]["distance_m"] < 20
    assert client.get("/api/assets", params={"kind": "tank"}).json()["error"]["code"] == "unknown_kind"
    assert client.get("/api/assets", params={"bbox": "x"}).status_code == 422
    assert client.get(f"/api/assets/{asset_id}").json()["name"] == "Gangnam-gu office"
    assert client.delete(f"/api/assets/{asset_id}", headers={"X-API-Key": citizen}).status_code == 403
    assert client.delete(f"/api/assets/{asset_id}", headers={"X-API-Key": admin}).status_code == 204
    assert client.get(f"/api/assets/{asset_id}").status_code == 404


def test_cli_import_reports_and_is_idempotent(sqlite_url, monkeypatch, tmp_path):
    from smartcity.cli import main
    from smartcity.core.db import Database
    from smartcity.settings import get_settings

    monkeypatch.setenv("SMARTCITY_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SMARTCITY_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        sensors = synthetic.sdot()
        path = str(tmp_path / sensors.name)
        (tmp_path / sensors.name).write_bytes(sensors.data)
        first = runner.invoke(main, ["import", "assets", path, "--kind", "sensor"])
        assert first.exit_code == 0, first.output
        assert "format sdot" in first.output and f"{sensors.imported} added" in first.output
        assert "skipped: " in first.output and "outside the city" in first.output
        second = runner.invoke(main, ["assets", "import", path, "--kind", "sensor"])
        assert second.exit_code == 0 and " 0 added" in second.output
        bad = runner.invoke(main, ["import", "assets", path, "--kind", "tank"])
        assert bad.exit_code == 2 and "unknown asset kind" in bad.output
        near = runner.invoke(main, ["assets", "nearest", "--kind", "sensor", "37.5", "127.0"])
        assert near.exit_code == 0 and near.output.count(" m\t") == 5
    finally:
        get_settings.cache_clear()
    db = Database(sqlite_url)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == sensors.imported
    db.dispose()
