"""The catalogue in DCAT-AP 2 (Turtle, JSON-LD, RDF/XML), made with rdflib, for harvesters such as
ckanext-dcat and data.europa.eu:

    GET /catalog.{ttl,jsonld,rdf}[?page=N][&modified_since=ISO date or time][&page_size=N]
    GET /dataset/{uid or name}.{ttl,jsonld,rdf}

Only published datasets appear. The catalogue is paged as ckanext-dcat pages it (newest change first, a
hydra:PagedCollection node with hydra:totalItems, itemsPerPage, firstPage, lastPage, nextPage, previousPage)
and STREAMED: the prefixes (or the JSON-LD context, or the rdf:RDF element) go out before the store is
asked anything, then the catalogue's own node and its paging, then the datasets a chunk of CHUNK at a time (a
smaller first one),
each chunk an rdflib graph of its own serialised and cut into the open document (Turtle: its statements
with the prefixes written once at the top, see `turtle_statements`; JSON-LD: its @graph items appended to the one
@graph array, all chunks compacted with the same context; RDF/XML: its rdf:Description elements, without the
rdf:RDF element around them). So a page of thousands of datasets starts answering at once, and memory holds
one chunk. A failure in mid-stream ends the response early (its status was sent): the parameters are
checked before it starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.i18n import N_
from smartcity.opendata.catalogue import LICENCES
from smartcity.opendata.models import Dataset, DatasetTag, Organisation, Resource

router = APIRouter(tags=["opendata"])
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
LOCN = Namespace("http://www.w3.org/ns/locn#")
GSP = Namespace("http://www.opengis.net/ont/geosparql#")
PREFIXES = {
    "dcat": DCAT,
    "dct": DCTERMS,
    "foaf": FOAF,
    "hydra": HYDRA,
    "locn": LOCN,
    "gsp": GSP,
    "skos": SKOS,
    "rdf": RDF,
    "rdfs": RDFS,
    "xsd": XSD,
}
CONTEXT = {prefix: str(ns) for prefix, ns in PREFIXES.items()}
FORMATS = {  # extension → (rdflib's format, media type)
    "ttl": ("turtle", "text/turtle; charset=utf-8"),
    "jsonld": ("json-ld", "application/ld+json"),
    "rdf": ("xml", "application/rdf+xml"),
}
PAGE_SIZE = 1000
PAGE_SIZE_MAX = 5000
CHUNK = 50
FIRST_CHUNK = 5  # the first datasets go out after a few milliseconds of serialising, not a whole chunk's
EU = "http://publications.europa.eu/resource/authority/"
FREQUENCIES = {
    "continuous": "CONT",
    "continual": "CONT",
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "monthly": "MONTHLY",
    "quarterly": "QUARTERLY",
    "annual": "ANNUAL",
    "irregular": "IRREG",
}
LICENCE_URLS = {
    "KOGL-Type1": "https://www.kogl.or.kr/info/licenseType1.do",
    "KOGL-Type2": "https://www.kogl.or.kr/info/licenseType2.do",
    "KOGL-Type3": "https://www.kogl.or.kr/info/licenseType3.do",
    "KOGL-Type4": "https://www.kogl.or.kr/info/licenseType4.do",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
}
IANA = "https://www.iana.org/assignments/media-types/"


class DcatError(InvalidInput):
    """A catalogue request with a parameter that cannot be read (400)."""

    status = 400
    code = "dcat"


# --- the graph of a dataset -----------------------------------------------------------------------------------


@dataclass
class Described:
    """A dataset with what its description needs, read in bulk for a chunk."""

    dataset: Dataset
    organisation: Organisation | None
    tags: list[str]
    resources: list[Resource]


def describe(session: Session, datasets: list[Dataset]) -> list[Described]:
    """The datasets' organisations, tags and resources in three queries, whatever their number."""
    ids = [d.id for d in datasets]
    org_ids = {d.organisation_id for d in datasets if d.organisation_id}
    orgs = {o.id: o for o in session.scalars(select(Organisation).where(Organisation.id.in_(org_ids)))}
    tags: dict[int, list[str]] = {}
    for dataset_id, tag in session.execute(
        select(DatasetTag.dataset_id, DatasetTag.tag).where(DatasetTag.dataset_id.in_(ids)).order_by(DatasetTag.tag)
    ):
        tags.setdefault(dataset_id, []).append(tag)
    resources: dict[int, list[Resource]] = {}
    for r in session.scalars(select(Resource).where(Resource.dataset_id.in_(ids)).order_by(Resource.id)):
        resources.setdefault(r.dataset_id, []).append(r)
    return [Described(d, orgs.get(d.organisation_id), tags.get(d.id, []), resources.get(d.id, [])) for d in datasets]


def new_graph() -> Graph:
    g = Graph(bind_namespaces="none")
    for prefix, ns in PREFIXES.items():
        g.bind(prefix, ns, override=True, replace=True)
    return g


def dataset_uri(base: str, dataset: Dataset) -> URIRef:
    return URIRef(f"{base}/dataset/{dataset.uid}")


def _when(value: datetime) -> Literal:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return Literal(aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"), datatype=XSD.dateTime)


def _texts(g: Graph, node, predicate, ko: str, en: str) -> None:
    for text, lang in ((ko, "ko"), (en, "en")):
        if text:
            g.add((node, predicate, Literal(text, lang=lang)))


def _day(text: str | None) -> Literal | None:
    try:
        return Literal(date.fromisoformat(text), datatype=XSD.date) if text else None
    except ValueError:
        return None


def add_dataset(g: Graph, base: str, d: Described) -> URIRef:
    """The DCAT-AP description of one dataset, its publisher and its distributions, added to `g`."""
    ds = d.dataset
    node = dataset_uri(base, ds)
    g.add((node, RDF.type, DCAT.Dataset))
    g.add((node, DCTERMS.identifier, Literal(ds.uid)))
    _texts(g, node, DCTERMS.title, ds.title_ko, ds.title_en)
    _texts(g, node, DCTERMS.description, ds.description_ko, ds.description_en)
    g.add((node, DCAT.landingPage, URIRef(f"{base}/opendata/datasets/{ds.name}")))
    g.add((node, DCTERMS.issued, _when(ds.created_at)))
    g.add((node, DCTERMS.modified, _when(ds.modified_at)))
    if d.organisation is not None:
        agent = URIRef(f"{base}/opendata/organisations/{d.organisation.name}")
        _texts(g, agent, FOAF.name, d.organisation.title_ko, d.organisation.title_en)
    else:
        agent = BNode()
        g.add((agent, FOAF.name, Literal(ds.publisher or ds.name)))
    g.add((agent, RDF.type, FOAF.Agent))
    g.add((node, DCTERMS.publisher, agent))
    licence = URIRef(LICENCE_URLS.get(ds.licence) or f"{base}/opendata/licences/{quote(ds.licence, safe='')}")
    g.add((licence, RDF.type, DCTERMS.LicenseDocument))
    g.add((licence, DCTERMS.title, Literal(LICENCES.get(ds.licence, ds.licence))))
    g.add((node, DCTERMS.license, licence))
    for tag in d.tags:
        g.add((node, DCAT.keyword, Literal(tag)))
    if ds.theme:
        theme = URIRef(f"{base}/opendata/themes/{quote(ds.theme, safe='')}")
        g.add((theme, RDF.type, SKOS.Concept))
        g.add((theme, SKOS.prefLabel, Literal(ds.theme)))
        g.add((node, DCAT.theme, theme))
    if ds.spatial:
        place = BNode()
        g.add((place, RDF.type, DCTERMS.Location))
        if ds.spatial.lstrip().startswith("{"):
            g.add((place, LOCN.geometry, Literal(ds.spatial, datatype=GSP.geoJSONLiteral)))
        else:
            g.add((place, SKOS.prefLabel, Literal(ds.spatial)))
        g.add((node, DCTERMS.spatial, place))
    start, end = _day(ds.temporal_start), _day(ds.temporal_end)
    if start is not None or end is not None:
        period = BNode()
        g.add((period, RDF.type, DCTERMS.PeriodOfTime))
        if start is not None:
            g.add((period, DCAT.startDate, start))
        if end is not None:
            g.add((period, DCAT.endDate, end))
        g.add((node, DCTERMS.temporal, period))
    if ds.update_frequency in FREQUENCIES:
        g.add((node, DCTERMS.accrualPeriodicity, URIRef(f"{EU}frequency/{FREQUENCIES[ds.update_frequency]}")))
    for r in d.resources:
        _add_distributions(g, base, node, licence, r)
    return node


def _add_distributions(g: Graph, base: str, dataset: URIRef, licence: URIRef, r: Resource) -> None:
    page = URIRef(f"{base}/opendata/resources/{r.uid}")
    shapes = [(page, f"{page}/download", "text/csv", "CSV")]
    if r.table is not None:
        shapes.append((URIRef(f"{page}#parquet"), f"{base}/opendata/rows/{r.uid}.parquet", None, "Parquet"))
    for node, download, media, fmt in shapes:
        g.add((node, RDF.type, DCAT.Distribution))
        g.add((node, DCTERMS.identifier, Literal(r.uid)))
        g.add((node, DCTERMS.title, Literal(r.name if fmt == "CSV" else f"{r.name} (Parquet)")))
        if r.description:
            g.add((node, DCTERMS.description, Literal(r.description)))
        g.add((node, DCAT.accessURL, page))
        if r.table is not None:
            g.add((node, DCAT.downloadURL, URIRef(download)))
        g.add((node, DCAT.mediaType, URIRef(IANA + (media or "application/vnd.apache.parquet"))))
        g.add((node, DCTERMS["format"], Literal(fmt if fmt == "Parquet" else r.format)))
        g.add((node, DCTERMS.license, licence))
        g.add((node, DCTERMS.modified, _when(r.modified_at)))
        g.add((dataset, DCAT.distribution, node))


# --- the catalogue's pages ----------------------------------------------------------------------------------


@dataclass
class CatalogPage:
    """Which published datasets one page of the catalogue holds."""

    page: int
    size: int
    total: int
    ids: list[int]
    modified_since: datetime | None
    modified: datetime | None  # the latest change of any published dataset

    @property
    def last(self) -> int:
        return max(1, -(-self.total // self.size))


def _published(since: datetime | None):
    query = select(Dataset.id).where(Dataset.published)
    return query.where(Dataset.modified_at >= since) if since is not None else query


def catalogue_page(session: Session, page: int, size: int, since: datetime | None) -> CatalogPage:
    """The page's dataset ids, newest change first (as ckanext-dcat orders its pages), and the count."""
    total = session.scalar(select(func.count()).select_from(_published(since).subquery()))
    newest = _published(since).order_by(Dataset.modified_at.desc(), Dataset.id.desc())
    ids = list(session.scalars(newest.offset((page - 1) * size).limit(size)))
    modified = session.scalar(select(func.max(Dataset.modified_at)).where(Dataset.published))
    return CatalogPage(page, size, total, ids, since, modified)


def add_catalog(g: Graph, base: str, ext: str, p: CatalogPage, profile) -> URIRef:
    """The catalogue's own node and the hydra paging of this page."""
    catalog = URIRef(f"{base}/catalog")
    g.add((catalog, RDF.type, DCAT.Catalog))
    g.add((catalog, DCTERMS.title, Literal(f"{profile.name_ko} 열린데이터광장", lang="ko")))
    g.add((catalog, DCTERMS.title, Literal(f"{profile.name_en} Open Data Plaza", lang="en")))
    g.add((catalog, DCTERMS.description, Literal(f"{profile.name_ko}의 공공데이터 목록입니다.", lang="ko")))
    g.add((catalog, DCTERMS.description, Literal(f"The open datasets of {profile.name_en}.", lang="en")))
    city = URIRef(f"{base}/")
    g.add((city, RDF.type, FOAF.Agent))
    _texts(g, city, FOAF.name, profile.name_ko, profile.name_en)
    g.add((catalog, DCTERMS.publisher, city))
    g.add((catalog, FOAF.homepage, URIRef(f"{base}/opendata")))
    for code in ("KOR", "ENG"):
        g.add((catalog, DCTERMS.language, URIRef(f"{EU}language/{code}")))
    g.add((catalog, DCTERMS.license, URIRef(LICENCE_URLS["KOGL-Type1"])))
    if p.modified is not None:
        g.add((catalog, DCTERMS.modified, _when(p.modified)))

    def url(number: int) -> URIRef:
        params: list[tuple[str, Any]] = [("page", number)]
        if p.modified_since is not None:
            params.append(("modified_since", p.modified_since.isoformat()))
        if p.size != PAGE_SIZE:
            params.append(("page_size", p.size))
        return URIRef(f"{base}/catalog.{ext}?{urlencode(params)}")

    paging = url(p.page)
    g.add((paging, RDF.type, HYDRA.PagedCollection))
    g.add((paging, HYDRA.totalItems, Literal(p.total)))
    g.add((paging, HYDRA.itemsPerPage, Literal(p.size)))
    g.add((paging, HYDRA.firstPage, url(1)))
    g.add((paging, HYDRA.lastPage, url(p.last)))
    if p.page < p.last:
        g.add((paging, HYDRA.nextPage, url(p.page + 1)))
    if p.page > 1:
        g.add((paging, HYDRA.previousPage, url(min(p.page - 1, p.last))))
    return catalog


# --- serialising in chunks ----------------------------------------------------------------------------------

_XMLNS = re.compile(r'xmlns:(\w+)="([^"]*)"')


def turtle_statements(g: Graph) -> str:
    """`g` as Turtle statements, a subject's predicates together, terms written by rdflib (`n3`: prefixed
    names for the head's namespaces, the full IRI otherwise, literals escaped). rdflib's own Turtle
    serialiser spends most of a catalogue's time looking for the prettiest form (7 ms a dataset, against
    1.7 ms here, on this loaded machine); N-Triples would be as fast, but twice the size and without prefixes."""
    nm = g.namespace_manager
    by_subject: dict[Any, list[str]] = {}
    for s, p, o in g:
        verb = "a" if p == RDF.type else p.n3(nm)
        by_subject.setdefault(s, []).append(f"{verb} {o.n3(nm)}")
    return "".join(f"{s.n3(nm)} " + " ;\n    ".join(sorted(parts)) + " .\n\n" for s, parts in by_subject.items())


def head(fmt: str) -> str:
    """What opens the document: every prefix, the JSON-LD context, or the rdf:RDF element."""
    if fmt == "turtle":
        return "".join(f"@prefix {p}: <{ns}> .\n" for p, ns in PREFIXES.items()) + "\n"
    if fmt == "json-ld":
        return '{"@context": ' + json.dumps(CONTEXT) + ', "@graph": ['
    spaces = "".join(f'\n   xmlns:{p}="{ns}"' for p, ns in PREFIXES.items())
    return f'<?xml version="1.0" encoding="utf-8"?>\n<rdf:RDF{spaces}\n>\n'


def tail(fmt: str) -> str:
    return {"turtle": "", "json-ld": "]}\n", "xml": "</rdf:RDF>\n"}[fmt]


def body(g: Graph, fmt: str, first: bool) -> str:
    """`g` serialised as a piece of the open document (see the module's docstring)."""
    if fmt == "turtle":
        return turtle_statements(g)
    if fmt == "json-ld":
        found = json.loads(g.serialize(format="json-ld", context=CONTEXT, auto_compact=True))
        found.pop("@context", None)
        items = found.get("@graph", [found] if found else [])
        text = ",".join(json.dumps(item, ensure_ascii=False) for item in items)
        return text if first or not text else "," + text
    text = g.serialize(format="xml")
    start = text.index("<rdf:RDF")
    opened = text.index(">", start) + 1
    for prefix, ns in _XMLNS.findall(text[start:opened]):
        if CONTEXT.get(prefix) != ns:
            raise ValueError(f"the RDF/XML head lacks the namespace {ns}")
    return text[opened : text.rindex("</rdf:RDF>")]


def catalogue_chunks(db, base: str, ext: str, page: int, size: int, since: datetime | None, profile) -> Iterator[bytes]:
    """The catalogue's page as a stream: the head before any query, then the catalogue, then the datasets."""
    fmt = FORMATS[ext][0]
    yield head(fmt).encode()
    with db.session() as s:
        p = catalogue_page(s, page, size, since)
        g = new_graph()
        catalog = add_catalog(g, base, ext, p, profile)
        yield body(g, fmt, first=True).encode()
        cuts = [0, *range(min(FIRST_CHUNK, len(p.ids)), len(p.ids), CHUNK), len(p.ids)]
        for at, end in zip(cuts, cuts[1:], strict=False):
            ids = p.ids[at:end]
            if not ids:
                continue
            found = {d.id: d for d in s.scalars(select(Dataset).where(Dataset.id.in_(ids)))}
            g = new_graph()
            for d in describe(s, [found[i] for i in ids if i in found]):
                g.add((catalog, DCAT.dataset, add_dataset(g, base, d)))
            yield body(g, fmt, first=False).encode()
            s.expunge_all()  # a chunk's objects are not needed once written
    yield tail(fmt).encode()


def dataset_document(session: Session, base: str, key: str, ext: str) -> str:
    """One published dataset (by uid or name) as a whole document."""
    found = session.scalar(select(Dataset).where(or_(Dataset.uid == key, Dataset.name == key), Dataset.published))
    if found is None:
        raise NotFound(N_("no dataset {name}"), params={"name": key})
    g = new_graph()
    add_dataset(g, base, describe(session, [found])[0])
    options = {"context": CONTEXT, "auto_compact": True} if ext == "jsonld" else {}
    return g.serialize(format=FORMATS[ext][0], **options)


# --- routes -------------------------------------------------------------------------------------------------


def _format(ext: str) -> tuple[str, str]:
    if ext not in FORMATS:
        raise NotFound(N_("the catalogue is served as .ttl, .jsonld or .rdf"))
    return FORMATS[ext]


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DcatError(N_("modified_since is an ISO 8601 date or time: {value}"), params={"value": text}) from None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def _number(text: str | None, name: str, default: int, most: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise DcatError(N_("{name} is a number from 1 to {most}"), params={"name": name, "most": most})
    return int(text)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/catalog.{ext}", include_in_schema=False)
async def catalog(request: Request, ext: str) -> Response:
    """A page of the published catalogue in DCAT-AP, streamed."""
    _, media = _format(ext)
    page = _number(request.query_params.get("page"), "page", 1, 10**9)
    size = _number(request.query_params.get("page_size"), "page_size", PAGE_SIZE, PAGE_SIZE_MAX)
    since = _since(request.query_params.get("modified_since"))
    chunks = catalogue_chunks(request.app.state.db, _base(request), ext, page, size, since, request.app.state.profile)
    return StreamingResponse(chunks, media_type=media)


@router.get("/dataset/{key}.{ext}", include_in_schema=False)
async def dataset(request: Request, key: str, ext: str) -> Response:
    """One published dataset in DCAT-AP, by its id or its name."""
    _, media = _format(ext)
    db = request.app.state.db

    def read() -> str:
        with db.session() as s:
            return dataset_document(s, _base(request), key, ext)

    return Response(await run_in_threadpool(read), media_type=media)
