"""core.render: one read model, the format the request asks for (extension, Accept), renderers found by type
(a module's through its declaration), and core's own formats (CSV, GeoJSON, Atom)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import pytest
from fastapi.responses import Response
from starlette.requests import Request

from smartcity.core import render
from smartcity.core.errors import NotFound
from smartcity.core.module import Module, declare


def request(path: str, accept: str = "", query: str = "") -> Request:
    headers = [(b"accept", accept.encode())] if accept else []
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "https",
        "server": ("city.example", 443),
        "path": path,
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"city.example"), *headers],
    }
    return Request(scope)


@dataclass
class Tally:
    """A read model only this test renders."""

    counts: dict[str, int]


class NamedTally(Tally):
    pass


def tally_json(req: Request, model: Tally, **context) -> Response:
    return render.json_response({"counts": model.counts, **context})


def tally_csv(req: Request, model: Tally) -> Response:
    table = render.Table("tally", [{"kind": k, "n": n} for k, n in model.counts.items()], ["kind", "n"])
    return render.renderer_for(render.Table, "csv")(req, table)


TALLY_MODULE = Module(name="render_test", renderers=((Tally, "json", tally_json), (Tally, "csv", tally_csv)))


@pytest.fixture(autouse=True)
def declared_module():
    """A module declares its renderers; declare() puts them in the registry (once per process)."""
    declare([TALLY_MODULE])


@pytest.mark.parametrize(
    ("path", "accept", "wanted"),
    [
        ("/tally.csv", "application/json", "csv"),  # the extension beats the Accept header
        ("/tally", "text/csv", "csv"),
        ("/tally", "text/html;q=0.9, application/json", "json"),  # quality, then order
        ("/tally", "text/csv;q=0.1, application/json;q=0.5", "json"),
        ("/tally", "application/geo+json", "json"),  # not offered: the default
        ("/tally", "text/csv;q=0", "json"),  # q=0 means "not this"
        ("/tally", "", "json"),
    ],
)
def test_the_format_comes_from_the_extension_then_accept_then_the_default(path, accept, wanted):
    assert render.format_of(request(path, accept), render.formats_of(Tally), "json") == wanted


def test_a_modules_renderer_is_found_for_its_type_and_subclasses_and_gets_the_context():
    model = NamedTally({"potholes": 3, "lights": 1})
    answer = render.render(request("/tally"), model, note="hi")
    assert json.loads(answer.body) == {"counts": {"potholes": 3, "lights": 1}, "note": "hi"}
    as_csv = render.render(request("/tally.csv"), model)
    assert as_csv.media_type.startswith("text/csv")
    assert as_csv.headers["content-disposition"] == 'attachment; filename="tally.csv"'
    assert list(csv.reader(io.StringIO(as_csv.body.decode()))) == [["kind", "n"], ["potholes", "3"], ["lights", "1"]]
    assert set(render.formats_of(NamedTally)) == {"json", "csv"}


def test_a_format_nobody_renders_is_not_found_and_an_unknown_format_cannot_be_registered():
    with pytest.raises(NotFound) as caught:
        render.render(request("/tally"), Tally({}), "atom")
    assert caught.value.code == "unknown_format"
    with pytest.raises(NotFound):
        render.render(request("/x"), object(), "json")
    with pytest.raises(ValueError):
        render.register(Tally, "pdf", tally_json)


def test_csv_cells_that_look_like_formulas_stay_text():
    table = render.Table("t", [{"a": "=SUM(A1)", "b": "+1", "c": "-x", "d": "@me", "e": "plain", "f": {"k": "v"}}])
    rows = list(csv.DictReader(io.StringIO(render.csv_text(table))))
    assert rows == [{"a": "'=SUM(A1)", "b": "'+1", "c": "'-x", "d": "'@me", "e": "plain", "f": '{"k": "v"}'}]


def test_points_are_a_feature_collection_with_the_rest_as_properties():
    points = render.Points("pins", [{"id": 7, "lat": 37.5, "lon": 127.0, "title": "a"}], extra={"truncated": True})
    answer = render.render(request("/pins.geojson"), points)
    assert answer.media_type == "application/geo+json"
    assert json.loads(answer.body) == {
        "type": "FeatureCollection",
        "truncated": True,
        "features": [
            {
                "type": "Feature",
                "id": 7,
                "properties": {"id": 7, "title": "a"},
                "geometry": {"type": "Point", "coordinates": [127.0, 37.5]},
            }
        ],
    }
    assert render.render(request("/pins.csv"), points).body.decode().splitlines() == [
        "id,lat,lon,title",
        "7,37.5,127.0,a",
    ]


def test_a_feed_is_atom_with_its_own_address_and_escaped_text():
    when = datetime(2024, 5, 1, 0, 30, tzinfo=UTC)
    item = render.FeedItem("/reports/3", "Pothole & co", "[open] deep", when, when, 37.5, 127)
    feed = render.Feed("Jung-gu <new>", [item])
    answer = render.render(request("/reports/feed.atom", query="district=11020"), feed)
    assert answer.media_type.startswith("application/atom+xml")
    root = ET.fromstring(answer.body)
    ns = {"a": render.ATOM, "g": render.GEORSS}
    assert root.find("a:title", ns).text == "Jung-gu <new>"
    assert root.find("a:link", ns).get("href") == "https://city.example/reports/feed.atom?district=11020"
    entry = root.find("a:entry", ns)
    assert entry.find("a:title", ns).text == "Pothole & co"
    assert entry.find("a:id", ns).text == "https://city.example/reports/3"
    assert entry.find("g:point", ns).text == "37.500000 127.000000"
    assert root.find("a:updated", ns).text == "2024-05-01T00:30:00+00:00"


@dataclass
class Notice:
    """A page's read model: a notice and its table of rows."""

    title: str
    table: render.Table


class NamedNotice(Notice):
    pass


def chrome(req: Request, name: str, status_code: int = 200, **values) -> Response:
    """A module's page frame as this test writes it: the template's name and the values it was given."""
    body = json.dumps({"template": name, "values": values}, default=lambda t: t.name, sort_keys=True)
    return Response(body, status_code=status_code, media_type=render.MEDIA_TYPES["html"])


def test_a_page_is_one_more_rendering_its_template_given_the_models_fields_and_the_routes_values():
    render.register(Notice, "html", render.template("notice.html", chrome))
    render.register(Notice, "csv", render.part("table", "csv"))
    notice = Notice("Closed roads", render.Table("roads", [{"road": "=Sejong-daero"}]))
    page = render.render(request("/notice", "text/html"), notice, default="json")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert json.loads(page.body) == {"template": "notice.html", "values": {"title": "Closed roads", "table": "roads"}}
    refused = render.render(request("/notice"), notice, "html", status_code=422)
    assert refused.status_code == 422
    rows = render.render(request("/notice.csv"), notice)
    assert rows.body.decode() == "road\n'=Sejong-daero\n"
    with pytest.raises(NotFound):
        render.render(request("/notice.json"), notice)


def test_a_templates_values_can_come_from_a_context_of_the_request_and_the_model():
    def context(req: Request, model: Notice) -> dict:
        return {"heading": model.title.upper(), "path": req.url.path}

    render.register(NamedNotice, "html", render.template("named.html", chrome, context))
    page = render.render(request("/named"), NamedNotice("Closed", render.Table("t", [])), default="html")
    assert json.loads(page.body)["values"] == {"heading": "CLOSED", "path": "/named"}
