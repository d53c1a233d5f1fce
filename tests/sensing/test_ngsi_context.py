"""JSON-LD @context in the NGSI-LD broker: the core context is a file in the package (served to pyld by a
document loader that never reaches the network), and attribute names are stored expanded-then-compacted with
it, so that two clients whose user contexts map one term to different IRIs write different attributes and
each reads, queries, projects, patches, deletes and is notified in its own terms; on both stores."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pyld import jsonld

from smartcity.sensing import ngsi_context
from smartcity.sensing.ngsi_wire import CORE_CONTEXT
from tests.servers import free_port

NGSI = "https://uri.etsi.org/ngsi-ld/"
DEFAULT = f"{NGSI}default-context/"
A, B = "https://example.org/a/", "https://example.org/b/"
CONTEXTS = {
    "/a.jsonld": {"@context": {"clients": f"{A}clients"}},
    "/b.jsonld": {"@context": {"clients": f"{B}clients"}},
    "/ta.jsonld": {"@context": {"Streetlight": f"{A}Streetlight", "clients": f"{A}clients"}},
    "/tb.jsonld": {"@context": {"Streetlight": f"{B}Streetlight"}},
}


class ContextServer:
    """Two user contexts on a real HTTP server (a free port), counting the requests it is sent."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Serve(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                hits.append(self.path)
                document = CONTEXTS.get(self.path)
                body = json.dumps(document).encode()
                self.send_response(200 if document else 404)
                self.send_header("Content-Type", "application/ld+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Serve)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def contexts() -> Iterator[ContextServer]:
    served = ContextServer()
    yield served
    served.server.shutdown()
    served.server.server_close()


def link(url: str) -> dict:
    return {"Link": f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'}


def test_the_core_context_file_maps_the_standards_terms_and_the_loader_stays_offline(contexts):
    doc = {
        "@context": CORE_CONTEXT,
        "id": "urn:ngsi-ld:Streetlight:x",
        "location": {"type": "GeoProperty", "value": "here", "observedAt": "2026-12-05T10:00:00Z"},
        "lanternHeight": {"type": "Property", "value": 8},
    }
    [expanded] = jsonld.expand(doc, ngsi_context.OPTIONS)
    location = expanded[f"{NGSI}location"][0]
    assert location["@type"] == [f"{NGSI}GeoProperty"]
    assert f"{NGSI}hasValue" in location and f"{NGSI}observedAt" in location
    assert f"{NGSI}default-context/lanternHeight" in expanded
    with pytest.raises(jsonld.JsonLdError):
        jsonld.expand({"@context": f"{contexts.base}/a.jsonld", "clients": 1}, ngsi_context.OPTIONS)
    assert contexts.hits == []  # the loader refused it without a request


def test_two_contexts_giving_one_term_two_meanings_keep_apart(client, sender_key, contexts):
    a, b = link(f"{contexts.base}/a.jsonld"), link(f"{contexts.base}/b.jsonld")
    key = {"X-API-Key": sender_key, "Content-Type": "application/json"}
    eid = "urn:ngsi-ld:Streetlight:ctx"
    entity = {"id": eid, "type": "Streetlight", "clients": {"type": "Property", "value": 5}}
    assert client.post("/ngsi-ld/v1/entities", content=json.dumps(entity), headers={**key, **a}).status_code == 201
    appended = client.post(
        f"/ngsi-ld/v1/entities/{eid}/attrs",
        content=json.dumps({"clients": {"type": "Property", "value": 9}}),
        headers={**key, **b},
    )
    assert appended.status_code == 204, appended.text

    def read(headers: dict, **params) -> dict:
        r = client.get(f"/ngsi-ld/v1/entities/{eid}", params={"options": "keyValues", **params}, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()

    assert read(a)["clients"] == 5
    assert read(b)["clients"] == 9
    plain = read({})
    assert (plain[f"{A}clients"], plain[f"{B}clients"]) == (5, 9) and "clients" not in plain
    assert read(b, pick="id,clients") == {"id": eid, "clients": 9}

    def found(headers: dict, q: str) -> list[str]:
        r = client.get("/ngsi-ld/v1/entities", params={"type": "Streetlight", "q": q}, headers=headers)
        return [e["id"] for e in r.json()]

    assert found(a, "clients==5") == [eid] and found(b, "clients==5") == []
    assert found(b, "clients==9") == [eid]

    patched = client.patch(
        f"/ngsi-ld/v1/entities/{eid}/attrs/clients", content=json.dumps({"value": 6}), headers={**key, **a}
    )
    assert patched.status_code == 204, patched.text
    assert (read(a)["clients"], read(b)["clients"]) == (6, 9)
    gone = client.delete(f"/ngsi-ld/v1/entities/{eid}/attrs/clients", headers={"X-API-Key": sender_key, **b})
    assert gone.status_code == 204
    assert read(a)["clients"] == 6 and "clients" not in read(b)

    ld = client.get(f"/ngsi-ld/v1/entities/{eid}", headers={"Accept": "application/ld+json", **a}).json()
    assert ld["@context"] == [f"{contexts.base}/a.jsonld", CORE_CONTEXT]
    [back] = jsonld.expand(ld, ngsi_context.OPTIONS)  # the answer read through the contexts it names: A's IRI
    assert back[f"{A}clients"][0][f"{NGSI}hasValue"] == [{"@value": 6}]


def test_a_subscription_watches_and_is_notified_in_its_own_terms(client, sender_key, contexts, receiver):
    a, b = link(f"{contexts.base}/a.jsonld"), link(f"{contexts.base}/b.jsonld")
    key = {"X-API-Key": sender_key, "Content-Type": "application/json"}
    subscription = {
        "type": "Subscription",
        "entities": [{"type": "Streetlight"}],
        "watchedAttributes": ["clients"],
        "q": "clients>3",
        "notification": {"attributes": ["clients"], "endpoint": {"uri": receiver.url, "accept": "application/json"}},
    }
    made = client.post("/ngsi-ld/v1/subscriptions", content=json.dumps(subscription), headers={**key, **a})
    assert made.status_code == 201, made.text
    shown = client.get(made.headers["location"], headers={"X-API-Key": sender_key}).json()
    assert shown["watchedAttributes"] == [f"{A}clients"] and "_terms" not in shown
    eid = "urn:ngsi-ld:Streetlight:sub"
    other = {"id": eid, "type": "Streetlight", "clients": {"type": "Property", "value": 50}}
    assert client.post("/ngsi-ld/v1/entities", content=json.dumps(other), headers={**key, **b}).status_code == 201
    mine = {"clients": {"type": "Property", "value": 4}}
    sent = client.post(f"/ngsi-ld/v1/entities/{eid}/attrs", content=json.dumps(mine), headers={**key, **a})
    assert sent.status_code == 204
    [notified] = receiver.wait(1)
    assert notified["body"]["data"] == [{"id": eid, "type": "Streetlight", "clients": {"type": "Property", "value": 4}}]


def test_a_subscription_patched_under_another_context_takes_the_patch_s_terms(client, sender_key, contexts, receiver):
    """Regression: a PATCH kept its names as sent (watching an attribute called `clients` nobody writes) and its
    q was read in the creation's context; now the fragment is expanded against the PATCH's own @context, like a
    creation, and its q is read in the context it was written in. Notifications stay in the creation's terms."""
    a, b = link(f"{contexts.base}/a.jsonld"), link(f"{contexts.base}/b.jsonld")
    key = {"X-API-Key": sender_key, "Content-Type": "application/json"}
    eid = "urn:ngsi-ld:Streetlight:patched"
    entity = {"id": eid, "type": "Streetlight", "clients": {"type": "Property", "value": 500}}
    assert client.post("/ngsi-ld/v1/entities", content=json.dumps(entity), headers={**key, **a}).status_code == 201
    theirs = {"clients": {"type": "Property", "value": 50}}
    assert (
        client.post(f"/ngsi-ld/v1/entities/{eid}/attrs", content=json.dumps(theirs), headers={**key, **b}).status_code
        == 204
    )
    endpoint = {"uri": receiver.url, "accept": "application/json"}
    subscription = {
        "type": "Subscription",
        "entities": [{"type": "Streetlight"}],
        "watchedAttributes": ["clients"],
        "q": "clients>3",
        "notification": {"attributes": ["clients"], "endpoint": endpoint},
    }
    made = client.post("/ngsi-ld/v1/subscriptions", content=json.dumps(subscription), headers={**key, **a})
    assert made.status_code == 201, made.text
    change = {
        "watchedAttributes": ["clients"],
        "q": "clients>100",
        "notification": {"attributes": ["clients"], "endpoint": endpoint},
    }
    patched = client.patch(made.headers["location"], content=json.dumps(change), headers={**key, **b})
    assert patched.status_code == 204, patched.text
    shown = client.get(made.headers["location"], headers={"X-API-Key": sender_key}).json()
    assert shown["watchedAttributes"] == [f"{B}clients"] and shown["notification"]["attributes"] == [f"{B}clients"]
    assert shown["q"] == "clients>100" and not {"_terms", "_qterms"} & set(shown)

    def write(value: int) -> None:
        body = json.dumps({"clients": {"type": "Property", "value": value}})
        assert client.post(f"/ngsi-ld/v1/entities/{eid}/attrs", content=body, headers={**key, **b}).status_code == 204

    write(60)  # B's clients is watched now, but 60 is not > 100 (A's clients, 500, would be)
    write(200)
    [notified] = receiver.wait(1)
    assert notified["body"]["data"] == [
        {"id": eid, "type": "Streetlight", f"{B}clients": {"type": "Property", "value": 200}}
    ]


def test_a_type_a_user_context_maps_elsewhere_matches_only_entities_stored_under_that_iri(client, sender_key, contexts):
    """Regression: entity types were kept as sent, so two clients whose contexts give `Streetlight` two IRIs
    (and a client with no context) read each other's entities as theirs."""
    ta, tb = f"{contexts.base}/ta.jsonld", f"{contexts.base}/tb.jsonld"
    key = {"X-API-Key": sender_key}
    web = jsonld.requests_document_loader()

    def loader(url: str, options: dict | None = None) -> dict:
        # The client has the core context at hand (no network here); its own contexts it fetches.
        if url == CORE_CONTEXT:
            return {"contextUrl": None, "documentUrl": url, "document": {"@context": ngsi_context.CORE}}
        return web(url, options)

    for n, url in ((1, ta), (2, tb)):
        expanded = jsonld.expand(
            {
                "@context": [url, CORE_CONTEXT],
                "id": f"urn:ngsi-ld:Streetlight:typed{n}",
                "type": "Streetlight",
                "clients": {"type": "Property", "value": n},
            },
            {"documentLoader": loader},
        )
        sent = jsonld.compact(expanded, [url, CORE_CONTEXT], {"documentLoader": loader})  # what a client sends
        r = client.post(
            "/ngsi-ld/v1/entities",
            content=json.dumps(sent),
            headers={**key, "Content-Type": "application/ld+json"},
        )
        assert r.status_code == 201, r.text

    def ids(headers: dict) -> list[str]:
        r = client.get("/ngsi-ld/v1/entities", params={"type": "Streetlight"}, headers={**key, **headers})
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()]

    assert ids(link(ta)) == ["urn:ngsi-ld:Streetlight:typed1"]
    assert ids(link(tb)) == ["urn:ngsi-ld:Streetlight:typed2"]
    assert ids({}) == []
    mine = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:typed1", headers={**key, **link(ta)}).json()
    assert (mine["type"], mine["clients"]["value"]) == ("Streetlight", 1)
    listed = client.get("/ngsi-ld/v1/types", headers={**key, **link(ta)}).json()["typeList"]
    assert listed == sorted(["Streetlight", f"{B}Streetlight"])
    info = client.get("/ngsi-ld/v1/types/Streetlight", headers={**key, **link(tb)}).json()
    assert (info["id"], info["entityCount"], info["typeName"]) == (f"{B}Streetlight", 1, "Streetlight")
    # B's context leaves clients to the core context; A's gives it A's IRI: B's entity has the core one.
    assert [(a["id"], a["attributeName"]) for a in info["attributeDetails"]] == [(f"{DEFAULT}clients", "clients")]
