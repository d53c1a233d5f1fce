"""Open311 against a live server with a real client: the `georeport` package from PyPI (JSON and XML), plus
the calls it does not make itself (POST requests with attributes and media, tokens) through `requests`,
the HTTP library it is built on."""

from __future__ import annotations

import io

import pytest
import requests
from georeport import GeoReport
from PIL import Image

from tests.conftest import make_key
from tests.reports.helpers import CITY_HALL


@pytest.fixture
def server(live_app):
    live_app.root = f"{live_app.url}/open311/v2"
    live_app.key = make_key(live_app.db, scope="open311")
    return live_app


def photo() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (80, 60), (10, 120, 30)).save(buf, "JPEG")
    return buf.getvalue()


def file_request(server, **extra) -> dict:
    data = [
        ("api_key", server.key),
        ("service_code", "cleaning-illegal-dumping"),
        ("lat", str(CITY_HALL[0])),
        ("long", str(CITY_HALL[1])),
        ("description", "Bags of rubbish <again> & again"),
        ("attribute[waste_types][]", "household"),
        ("attribute[waste_types][]", "food"),
    ]
    data += list(extra.items())
    r = requests.post(
        f"{server.root}/requests.json", data=data, files={"media": ("rubbish.jpg", photo(), "image/jpeg")}, timeout=10
    )
    assert r.status_code == 201, r.text
    return r.json()[0]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_the_georeport_client_works_against_us(server, fmt):
    client = GeoReport(server.root, jurisdiction="seoul", output_format=fmt)
    services = client.get_service_list()
    codes = {s["service_code"]: s for s in services}
    assert len(codes) == 67 and codes["roads-pothole"]["type"] == "realtime"
    definition = client.get_service_definition("cleaning-illegal-dumping")
    attribute = definition["attributes"][0] if fmt == "json" else definition["attributes"]["attribute"]
    assert attribute["code"] == "waste_types" and attribute["datatype"] == "multivaluelist"

    created = file_request(server)
    rid = created["service_request_id"]
    one = client.get_service_request(rid)
    assert one["service_request_id"] == rid and one["status"] == "open"
    assert one["service_code"] == "cleaning-illegal-dumping" and one["media_url"].endswith(".jpg")
    assert one["description"] == "Bags of rubbish <again> & again"
    assert one["media_url"].startswith(f"{server.url}/api/reports/photos/")
    media = requests.get(one["media_url"], timeout=10)
    assert media.status_code == 200 and media.content[:2] == b"\xff\xd8"  # the photo, as a JPEG

    second = file_request(server, description="More rubbish")
    found = client.get_service_requests(service_code="cleaning-illegal-dumping", status="open")
    found = found if isinstance(found, list) else [found]
    assert [r["service_request_id"] for r in found] == [second["service_request_id"], rid]
    assert client.get_service_requests(service_request_id=rid)  # a single match (a dict in XML)
    if fmt == "json":  # (the client cannot read an empty XML list: xmltodict gives None for it)
        assert client.get_service_requests(status="closed") == []


def test_the_client_sees_errors_as_http_errors(server):
    client = GeoReport(server.root, jurisdiction="seoul")
    with pytest.raises(requests.HTTPError) as caught:
        client.get_service_definition("no-such-service")
    assert caught.value.response.status_code == 404
    assert caught.value.response.json() == [{"code": 404, "description": "no service 'no-such-service'"}]
    with pytest.raises(requests.HTTPError) as caught:
        GeoReport(server.root, jurisdiction="busan").get_service_list()
    assert caught.value.response.status_code == 404
    with pytest.raises(requests.HTTPError) as caught:
        GeoReport(server.root, output_format="xml").get_service_requests(status="whatever")
    assert caught.value.response.status_code == 400
    assert b"<errors><error><code>400</code>" in caught.value.response.content


def test_tokens_and_discovery_over_the_wire(server):
    from smartcity.reports.open311_wire import token_for

    created = file_request(server)
    assert "token" not in created  # the spec's answer carries the id or a token, not both
    created["token"] = token_for(int(created["service_request_id"]), server.server.config.app.state.settings)
    r = requests.get(f"{server.root}/tokens/{created['token']}.json", timeout=10)
    assert r.json() == [{"service_request_id": created["service_request_id"], "token": created["token"]}]
    disco = requests.get(f"{server.url}/open311/discovery.json", timeout=10).json()
    assert disco["endpoints"][0]["url"] == server.root
    refused = requests.post(f"{server.root}/requests.xml", data={"api_key": "sc_nope", "service_code": "x"}, timeout=10)
    assert refused.status_code == 403 and b"<errors>" in refused.content
