"""The catalogue in DCAT-AP on both stores: each format parses back with rdflib and holds exactly the
published datasets, described with DCAT-AP's terms; pages follow hydra's links; a dataset alone by id or
name; the catalogue of thousands streamed (its first dataset measured)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rdflib import Graph, Literal, Namespace, URIRef, namespace
from sqlalchemy import select

from smartcity.opendata import dcat, publishing
from smartcity.opendata.dcat import HYDRA
from smartcity.opendata.models import Dataset, Organisation, Resource
from tests.opendata.helpers import PUBLISHER, publish

# Plain namespaces: pytest's collection probes a module's names, and rdflib's closed ones warn on that.
DCAT, DCTERMS, FOAF, RDF, SKOS, XSD = (
    Namespace(str(getattr(namespace, name))) for name in ("DCAT", "DCTERMS", "FOAF", "RDF", "SKOS", "XSD")
)
RDF_FORMATS = {"ttl": "turtle", "jsonld": "json-ld", "rdf": "xml"}
EU_FREQ = "http://publications.europa.eu/resource/authority/frequency/"


def _graph(answer: httpx.Response, ext: str) -> Graph:
    assert answer.status_code == 200, answer.text
    g = Graph()
    g.parse(data=answer.content, format=RDF_FORMATS[ext])
    return g


def _datasets(g: Graph) -> set[str]:
    return {str(s) for s in g.subjects(RDF.type, DCAT.Dataset)}


def _described(db) -> dict[str, str]:
    """Three datasets (one withdrawn), one fully described, loaded through the publishing functions."""
    with db.session() as s:
        org = s.scalar(select(Organisation).order_by(Organisation.id))
        publishing.save_dataset(
            s,
            PUBLISHER,
            publishing.DatasetInfo(
                "dumping",
                title_ko="무단투기 단속 현황",
                title_en="Illegal dumping enforcement",
                description_ko="구별 단속 건수입니다.",
                description_en="Enforcement counts by district.",
                organisation=org.name,
                licence="KOGL-Type1",
                update_frequency="monthly",
                spatial="서울특별시 강남구",
                temporal_start="2023-01-01",
                temporal_end="2024-06-30",
                theme="environment",
                tags=("쓰레기", "환경"),
            ),
        )
        org_titles = (org.title_ko, org.title_en)
    dumping = publish(db, "dumping", "구,건수\n강남구,12\n중구,7\n".encode(), "dumping.csv")
    publish(db, "stations", b"name,lat,lon\nA,37.5,127.0\n", "stations.csv")
    publish(db, "hidden", b"a,b\n1,2\n", "hidden.csv")
    with db.session() as s:
        publishing.set_published(s, PUBLISHER, "hidden", False)
        uids = {d.name: d.uid for d in s.scalars(select(Dataset))}
    return {**uids, "resource": dumping.resource_id, "org_ko": org_titles[0], "org_en": org_titles[1]}


@pytest.mark.parametrize("ext", ["ttl", "jsonld", "rdf"])
def test_the_catalogue_parses_back_with_only_the_published_datasets_in_dcat_ap_terms(client, db, ext):
    known = _described(db)
    answer = client.get(f"/catalog.{ext}")
    assert (
        answer.headers["content-type"].split(";")[0]
        == {
            "ttl": "text/turtle",
            "jsonld": "application/ld+json",
            "rdf": "application/rdf+xml",
        }[ext]
    )
    g = _graph(answer, ext)
    base = str(client.base_url).rstrip("/")
    ds = {f"{base}/dataset/{known[n]}" for n in ("dumping", "stations")}
    assert _datasets(g) == ds  # the withdrawn one is not there
    catalog = URIRef(f"{base}/catalog")
    assert (catalog, RDF.type, DCAT.Catalog) in g
    assert {str(o) for o in g.objects(catalog, DCAT.dataset)} == ds
    paging = next(g.subjects(RDF.type, HYDRA.PagedCollection))
    assert g.value(paging, HYDRA.totalItems).toPython() == 2
    assert g.value(paging, HYDRA.nextPage) is None

    node = URIRef(f"{base}/dataset/{known['dumping']}")
    assert set(g.objects(node, DCTERMS.title)) == {
        Literal("무단투기 단속 현황", lang="ko"),
        Literal("Illegal dumping enforcement", lang="en"),
    }
    assert Literal("Enforcement counts by district.", lang="en") in set(g.objects(node, DCTERMS.description))
    publisher = g.value(node, DCTERMS.publisher)
    assert (publisher, RDF.type, FOAF.Agent) in g
    assert Literal(known["org_ko"], lang="ko") in set(g.objects(publisher, FOAF.name))
    assert str(g.value(node, DCTERMS.license)) == "https://www.kogl.or.kr/info/licenseType1.do"
    assert g.value(node, DCTERMS.issued).datatype == XSD.dateTime
    assert isinstance(g.value(node, DCTERMS.modified).toPython(), datetime)
    assert {str(k) for k in g.objects(node, DCAT.keyword)} == {"쓰레기", "환경"}
    theme = g.value(node, DCAT.theme)
    assert (theme, RDF.type, SKOS.Concept) in g and str(g.value(theme, SKOS.prefLabel)) == "environment"
    assert str(g.value(g.value(node, DCTERMS.spatial), SKOS.prefLabel)) == "서울특별시 강남구"
    period = g.value(node, DCTERMS.temporal)
    assert str(g.value(period, DCAT.startDate)) == "2023-01-01" and str(g.value(period, DCAT.endDate)) == "2024-06-30"
    assert g.value(node, DCTERMS.accrualPeriodicity) == URIRef(EU_FREQ + "MONTHLY")
    distributions = list(g.objects(node, DCAT.distribution))
    downloads = {str(g.value(d, DCAT.downloadURL)): str(g.value(d, DCAT.mediaType)) for d in distributions}
    csv_url = f"{base}/opendata/resources/{known['resource']}/download"
    assert downloads[csv_url] == "https://www.iana.org/assignments/media-types/text/csv"
    assert all((d, RDF.type, DCAT.Distribution) in g and g.value(d, DCAT.accessURL) for d in distributions)
    # the links work: the CSV is the resource's rows, the Parquet one answers
    assert client.get(csv_url).content.decode("utf-8-sig").splitlines()[1] == "강남구,12"
    parquet = next(u for u in downloads if u.endswith(".parquet"))
    assert client.get(parquet).status_code == 200


@pytest.mark.parametrize("ext", ["ttl", "jsonld", "rdf"])
def test_one_dataset_by_id_or_name_and_never_a_withdrawn_one(client, db, ext):
    known = _described(db)
    base = str(client.base_url).rstrip("/")
    for key in (known["stations"], "stations"):
        g = _graph(client.get(f"/dataset/{key}.{ext}"), ext)
        assert _datasets(g) == {f"{base}/dataset/{known['stations']}"}
        assert len(list(g.objects(None, DCAT.distribution))) == 2  # CSV and Parquet
    assert client.get(f"/dataset/hidden.{ext}").status_code == 404
    assert client.get(f"/dataset/{known['hidden']}.{ext}").status_code == 404
    assert client.get("/dataset/stations.xml").status_code == 404


def _bulk(db, count: int, start: datetime) -> list[str]:
    """`count` published datasets with a resource each, written in one go (a catalogue's size, not its
    publishing, is under test); the i-th modified i minutes after `start`."""
    uids = []
    with db.session() as s:
        for i in range(count):
            uid = str(uuid.uuid4())
            uids.append(uid)
            moment = start + timedelta(minutes=i)
            dataset = Dataset(
                uid=uid,
                name=f"bulk-{i:05d}",
                title_ko=f"데이터 {i}",
                title_en=f"Data {i}",
                description_ko="설명",
                update_frequency="daily",
                published=True,
                created_at=moment,
                modified_at=moment,
            )
            s.add(dataset)
            s.flush()
            s.add(Resource(uid=str(uuid.uuid4()), dataset_id=dataset.id, name=f"표 {i}", modified_at=moment))
    return uids


@pytest.mark.parametrize("ext", ["ttl", "jsonld", "rdf"])
def test_pages_follow_hydras_next_page_and_modified_since_narrows_them(client, db, ext):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    uids = _bulk(db, 7, start)
    base = str(client.base_url).rstrip("/")
    seen: list[str] = []
    url: str | None = f"/catalog.{ext}?page_size=3"
    pages = 0
    while url:
        g = _graph(client.get(url), ext)
        pages += 1
        paging = next(g.subjects(RDF.type, HYDRA.PagedCollection))
        assert g.value(paging, HYDRA.totalItems).toPython() == 7
        assert g.value(paging, HYDRA.itemsPerPage).toPython() == 3
        assert str(g.value(paging, HYDRA.lastPage)).endswith("page=3&page_size=3")
        found = sorted(_datasets(g), key=lambda u: uids.index(u.rsplit("/", 1)[1]), reverse=True)
        assert len(found) <= 3
        seen += found
        following = g.value(paging, HYDRA.nextPage)
        url = str(following).removeprefix(base) if following is not None else None
    assert pages == 3 and seen == [f"{base}/dataset/{u}" for u in reversed(uids)]  # newest change first
    since = (start + timedelta(minutes=5)).isoformat()
    g = _graph(client.get(f"/catalog.{ext}", params={"modified_since": since}), ext)
    assert _datasets(g) == {f"{base}/dataset/{u}" for u in uids[5:]}
    assert _datasets(_graph(client.get(f"/catalog.{ext}", params={"page": "9"}), ext)) == set()
    for bad in ({"page": "0"}, {"page": "x"}, {"page_size": "5001"}, {"modified_since": "yesterday"}):
        answer = client.get(f"/catalog.{ext}", params=bad)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "dcat", bad


def test_five_thousand_datasets_start_answering_at_once_and_all_arrive(live):
    """Measured, not only bounded: the times are printed (pytest -s); the bound is loose for a loaded CI box."""
    uids = _bulk(live.db, 5000, datetime(2024, 1, 1, tzinfo=UTC))
    httpx.get(f"{live.url}/catalog.ttl", params={"page_size": "1"}, timeout=30)  # a first request's lazy imports
    began = time.perf_counter()
    first_byte = first_dataset = None
    received = bytearray()
    with httpx.stream("GET", f"{live.url}/catalog.ttl", params={"page_size": "5000"}, timeout=120) as answer:
        for chunk in answer.iter_raw():
            first_byte = first_byte or time.perf_counter() - began
            received += chunk
            if first_dataset is None and b"dcat:Dataset" in received:
                first_dataset = time.perf_counter() - began
    total = time.perf_counter() - began
    print(
        f"\n5,000 datasets as Turtle: first byte {first_byte * 1000:.0f} ms, "
        f"first dataset {first_dataset * 1000:.0f} ms, all {total:.1f} s, {len(received) / 1e6:.1f} MB"
    )
    assert first_dataset is not None and first_dataset < 0.5
    g = Graph()
    g.parse(data=bytes(received), format="turtle")
    assert len(_datasets(g)) == 5000 == len(uids)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), min_size=4, max_size=4),
    tags=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=15), max_size=3),
)
def test_the_turtle_writer_says_what_rdflib_holds_whatever_the_text(texts, tags):
    """Titles, descriptions, tags and a place of any text (quotes, backslashes, line breaks, control
    characters, any script) come back from our Turtle exactly as the graph held them."""
    moment = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    dataset = Dataset(
        id=1, uid="u-1", name="n", title_ko=texts[0], title_en=texts[1], description_ko=texts[2],
        description_en="", licence="KOGL-Type1", publisher=texts[3], update_frequency="weekly", spatial=texts[3],
        temporal_start=None, temporal_end=None, theme=texts[0], created_at=moment, modified_at=moment,
    )  # fmt: skip
    resource = Resource(uid="r-1", name=texts[1] or "표", description=texts[2], format="CSV", table="od_r_1",
                        modified_at=moment)  # fmt: skip
    g = dcat.new_graph()
    dcat.add_dataset(g, "http://city.example", dcat.Described(dataset, None, sorted(set(tags)), [resource]))
    back = Graph()
    back.parse(data=dcat.head("turtle") + dcat.turtle_statements(g), format="turtle")
    assert back.isomorphic(g)
