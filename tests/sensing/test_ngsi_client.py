"""A user @context named by URL: fetched from a real HTTP server the test starts (a free port), 503
LdContextNotAvailable when nothing answers; and an NGSI-LD client as one is written with plain httpx and pyld:
it expands its document with its own context, sends it as application/ld+json, queries with a Link header and
reads the answer back through the same context."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pyld import jsonld

from tests.servers import free_port

ERR = "https://uri.etsi.org/ngsi-ld/errors/"
WIFI = "https://smartdatamodels.org/dataModel.WiFi/"
CONTEXT = {
    "@context": {
        "Streetlight": f"{WIFI}Streetlight",
        "clients": f"{WIFI}clients",
        "ssid": f"{WIFI}ssid",
        "id": "@id",
        "type": "@type",
        "value": "https://uri.etsi.org/ngsi-ld/hasValue",
        "Property": "https://uri.etsi.org/ngsi-ld/Property",
    }
}


@pytest.fixture
def context_url() -> Iterator[str]:
    """A context served by a real HTTP server on a free port, as a data model's publisher serves one."""

    class Serve(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            body = json.dumps(CONTEXT).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/ld+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Serve)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/wifi-context.jsonld"
    server.shutdown()
    server.server_close()


def test_an_unreachable_context_is_503_and_nothing_is_stored(sender_key, client):
    dead = f"http://127.0.0.1:{free_port()}/context.jsonld"
    body = {"id": "urn:ngsi-ld:Streetlight:ctx1", "type": "Streetlight", "@context": dead}
    r = client.post(
        "/ngsi-ld/v1/entities",
        content=json.dumps(body),
        headers={"Content-Type": "application/ld+json", "X-API-Key": sender_key},
    )
    assert (r.status_code, r.json()["type"]) == (503, ERR + "LdContextNotAvailable")
    linked = client.get(
        "/ngsi-ld/v1/entities?type=Streetlight",
        headers={"Link": f'<{dead}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'},
    )
    assert linked.status_code == 503
    assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:ctx1").status_code == 404


def test_a_client_with_httpx_and_pyld_creates_queries_and_subscribes(sender_key, client, context_url, receiver):
    subscription = {
        "@context": context_url,
        "type": "Subscription",
        "entities": [{"type": "Streetlight"}],
        "watchedAttributes": ["clients"],
        "notification": {"endpoint": {"uri": receiver.url, "accept": "application/json"}},
    }
    subscribed = client.post(
        "/ngsi-ld/v1/subscriptions",
        content=json.dumps(subscription),
        headers={"Content-Type": "application/ld+json", "X-API-Key": sender_key},
    )
    assert subscribed.status_code == 201, subscribed.text
    assert subscribed.headers["location"].startswith("/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:")
    mine = {
        "@context": context_url,
        "id": "urn:ngsi-ld:Streetlight:ctx2",
        "type": "Streetlight",
        "ssid": {"type": "Property", "value": "Seoul_Free_WiFi"},
        "clients": {"type": "Property", "value": 12},
    }
    expanded = jsonld.expand(mine)
    assert f"{WIFI}clients" in expanded[0]
    sent = jsonld.compact(expanded, context_url)  # what a client sends: compacted with its own context
    r = client.post(
        "/ngsi-ld/v1/entities",
        content=json.dumps(sent),
        headers={"Content-Type": "application/ld+json", "X-API-Key": sender_key},
    )
    assert r.status_code == 201, r.text

    link = f'<{context_url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    # The context maps the type to the data model's IRI: not the city's public Streetlight, read with a key.
    key = {"X-API-Key": sender_key}
    found = client.get(
        "/ngsi-ld/v1/entities", params={"type": "Streetlight", "q": "clients>10"}, headers={"Link": link, **key}
    )
    assert found.status_code == 200
    [entity] = found.json()
    assert entity["type"] == "Streetlight"  # compacted with the client's context
    # Without that context, Streetlight is the core context's term: another type, the entity is not one.
    assert client.get("/ngsi-ld/v1/entities", params={"type": "Streetlight"}, headers=key).json() == []
    plain = client.get("/ngsi-ld/v1/entities", params={"type": f"{WIFI}Streetlight"}, headers=key).json()
    assert [e["id"] for e in plain] == ["urn:ngsi-ld:Streetlight:ctx2"]
    read_back = jsonld.expand({**entity, "@context": context_url})
    assert read_back[0][f"{WIFI}clients"] == expanded[0][f"{WIFI}clients"]
    assert read_back[0][f"{WIFI}ssid"] == expanded[0][f"{WIFI}ssid"]
    none = client.get(
        "/ngsi-ld/v1/entities", params={"type": "Streetlight", "q": "clients>12"}, headers={"Link": link, **key}
    )
    assert none.json() == []

    [notified] = receiver.wait(1)  # delivered by the app's job
    data = notified["body"]["data"]
    assert jsonld.expand({**data[0], "@context": context_url})[0][f"{WIFI}ssid"] == expanded[0][f"{WIFI}ssid"]
