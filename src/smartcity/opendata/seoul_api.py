"""The Seoul Open Data Plaza's OpenAPI call shape over the catalogue's published tables:

    GET /openapi/{KEY}/{json|xml|xls}/{SERVICE}/{START}/{END}/[FILTER/…]   (a trailing slash or not)

START and END are 1-based and inclusive. SERVICE is a declared service's name (`declare_service`: a resource
and the columns its positional filters match, in order) or a published dataset's name (its first table, no
filters). A filter is matched for equality against its column, in the column's type; a blank one (empty, or
a space as Seoul's clients send) leaves its column free.

As Seoul's, every answer is HTTP 200 with the outcome in RESULT: INFO-000 with the rows
`{SERVICE: {list_total_count, RESULT: {CODE, MESSAGE}, row: [...]}}` (XML: <SERVICE><list_total_count/>
<RESULT><CODE/><MESSAGE/></RESULT><row>…</row>…</SERVICE>), anything else `{RESULT: {CODE, MESSAGE}}` alone
(XML: <RESULT>…</RESULT>). `xls` answers an XLSX workbook (openpyxl writes no legacy .xls): a sheet of rows
named after the service and a RESULT sheet. The checks, in the order they are made, are in CODES.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from smartcity.core import audit
from smartcity.core.errors import InvalidInput, NotFound, PermissionDenied, SmartCityError
from smartcity.core.i18n import N_
from smartcity.opendata import datastore, keys
from smartcity.opendata.models import Dataset, OpenApiService, Resource

TYPES = ("json", "xml", "xls")
SAMPLE_ROWS = 5
MAX_ROWS = 1000
# The answers' codes and messages, as Seoul's API writes them: in Korean whatever the caller's language.
CODES = {
    "INFO-000": "정상 처리되었습니다.",
    "INFO-100": "인증키가 유효하지 않습니다. 발급받은 인증키를 확인하세요.",
    "INFO-200": "해당하는 데이터가 없습니다.",
    "ERROR-300": "필수 값이 빠져 있습니다. 인증키, 파일 형식, 서비스명, 요청 시작 위치와 종료 위치를 모두 입력하세요.",
    "ERROR-301": "파일 형식이 올바르지 않습니다. json, xml, xls 중 하나를 입력하세요.",
    "ERROR-310": "해당하는 서비스를 찾을 수 없습니다. 서비스명을 확인하세요.",
    "ERROR-331": "요청 시작 위치를 확인하세요. 시작 위치는 1 이상의 정수입니다.",
    "ERROR-332": "요청 종료 위치를 확인하세요. 종료 위치는 1 이상의 정수입니다.",
    "ERROR-333": "요청 위치 값의 형식이 올바르지 않습니다. 시작 위치와 종료 위치에는 정수를 입력하세요.",
    "ERROR-334": "요청 시작 위치가 종료 위치보다 큽니다. 시작 위치는 종료 위치와 같거나 작아야 합니다.",
    "ERROR-335": "sample 인증키로는 한 번에 5건까지만 요청할 수 있습니다. 그 이상은 인증키를 발급받아 요청하세요.",
    "ERROR-336": "한 번에 1,000건까지만 요청할 수 있습니다. 요청 범위를 나누어 호출하세요.",
    "ERROR-337": "이 인증키로 오늘 호출할 수 있는 횟수를 모두 사용했습니다. 내일 다시 호출하세요.",
    "ERROR-338": "선택 인자가 서비스에 정해진 개수보다 많거나 그 열의 형식에 맞지 않습니다.",
    "ERROR-500": "서버 오류입니다. 잠시 후 다시 호출하세요.",
}
_INTEGER = re.compile(r"[+-]?\d{1,30}")
_SERVICE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,99}")
_XML_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_NAME = re.compile(r"[^\w.\-]")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Answer:
    """One call's outcome: a RESULT code, and for INFO-000 the rows and their count."""

    code: str
    service: str = ""
    total: int = 0
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


class Refused(Exception):
    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


# --- services ---------------------------------------------------------------------------------------------


def declare_service(session: Session, who, name: str, resource_uid: str, filters: list[str]) -> OpenApiService:
    """Publish `resource_uid` under the service name `name`, its positional filters matching `filters` (column
    ids, in order); replaces a declaration of the same name. Audited."""
    if not _SERVICE_NAME.fullmatch(name or ""):
        raise InvalidInput(N_("A service name is a letter then letters, digits, '-' or '_' (at most 100)."))
    resource = session.scalar(select(Resource).where(Resource.uid == resource_uid))
    if resource is None:
        raise NotFound(N_('Resource "{id}" was not found.'), params={"id": resource_uid})
    known = [c["id"] for c in resource.columns]
    unknown = [f for f in filters if f not in known]
    if unknown:
        raise InvalidInput(N_("Not a column of the resource: {names}"), params={"names": ", ".join(unknown)})
    service = session.scalar(select(OpenApiService).where(OpenApiService.name == name))
    if service is None:
        service = OpenApiService(name=name, resource_id=resource.id, filters=list(filters))
        session.add(service)
    else:
        service.resource_id, service.filters = resource.id, list(filters)
    session.flush()
    audit.record(
        session, who, "declare", "opendata.openapi_service", name, {"resource": resource_uid, "filters": filters}
    )
    return service


@dataclass(frozen=True)
class ServiceView:
    """A declared service as the publishers' page lists it."""

    name: str
    dataset: str
    resource_uid: str
    resource_name: str
    filters: list[str]


def services(session: Session) -> list[ServiceView]:
    """Every declared service, by name."""
    rows = session.execute(
        select(OpenApiService.name, Dataset.name, Resource.uid, Resource.name, OpenApiService.filters)
        .join(Resource, Resource.id == OpenApiService.resource_id)
        .join(Dataset, Dataset.id == Resource.dataset_id)
        .order_by(OpenApiService.name)
    )
    return [ServiceView(n, d, u, r, list(f or [])) for n, d, u, r, f in rows]


def _service(session: Session, name: str) -> tuple[str, list[str]] | None:
    """The resource (uid) a service name reads and its filter columns."""
    declared = session.execute(
        select(Resource.uid, OpenApiService.filters)
        .join(Resource, Resource.id == OpenApiService.resource_id)
        .where(OpenApiService.name == name)
    ).first()
    if declared is not None:
        return declared[0], list(declared[1] or [])
    uid = session.scalar(
        select(Resource.uid)
        .join(Dataset, Dataset.id == Resource.dataset_id)
        .where(Dataset.name == name, Dataset.published.is_(True), Resource.table.is_not(None))
        .order_by(Resource.id)
        .limit(1)
    )
    return (uid, []) if uid is not None else None


# --- a call -----------------------------------------------------------------------------------------------


def _position(text: str, code_below_one: str) -> int:
    if not _INTEGER.fullmatch(text.strip()):
        raise Refused("ERROR-333")
    value = int(text)
    if value < 1:
        raise Refused(code_below_one)
    return value


def answer(db, key: str, service: str, start_text: str, end_text: str, values: list[str]) -> Answer:
    """The call's answer once the path has its five parts and a known type (the checks in CODES' order)."""
    with db.session() as s:
        sample = key == keys.SAMPLE
        key_id = None if sample else keys.key_id_of(s, key)
        if not sample and key_id is None:
            return Answer("INFO-100")
        try:
            # Every call made with an issued key counts against its quota, answered or refused.
            if key_id is not None and not keys.USAGE.get(db).take(s, key_id, keys.today(db), keys.daily_quota(db)):
                raise Refused("ERROR-337")
            start = _position(start_text, "ERROR-331")
            end = _position(end_text, "ERROR-332")
            if start > end:
                raise Refused("ERROR-334")
            wanted = end - start + 1
            if sample and wanted > SAMPLE_ROWS:
                raise Refused("ERROR-335")
            if wanted > MAX_ROWS:
                raise Refused("ERROR-336")
            found = _service(s, service)
            if found is None:
                raise Refused("ERROR-310")
            uid, filter_columns = found
            given = [v.strip() for v in values]
            while given and not given[-1]:
                given.pop()
            if len(given) > len(filter_columns):
                raise Refused("ERROR-338")
            filters = {column: value for column, value in zip(filter_columns, given, strict=False) if value}
            if start - 1 > 2**53:  # past any table's end, and past what the stores' OFFSET takes
                return Answer("INFO-200")
            try:
                result = datastore.search(s, uid, filters=filters, limit=wanted, offset=start - 1)
            except (NotFound, PermissionDenied):
                raise Refused("ERROR-310") from None
            except datastore.FieldError:
                raise Refused("ERROR-338") from None
        except Refused as refused:
            return Answer(refused.code)
    columns = [f["id"] for f in result["fields"] if f["id"] != "_id"]
    rows = [{c: record[c] for c in columns} for record in result["records"]]
    if not rows:
        return Answer("INFO-200")
    return Answer("INFO-000", service, result["total"], columns, rows)


# --- renderings -------------------------------------------------------------------------------------------


def _result(code: str) -> dict[str, str]:
    return {"CODE": code, "MESSAGE": CODES[code]}


def _xml_name(name: str) -> str:
    """`name` as an XML element name (a column id may hold spaces, or start with a digit)."""
    cleaned = _XML_NAME.sub("_", name) or "_"
    return cleaned if cleaned[0].isalpha() or cleaned[0] == "_" else f"_{cleaned}"


def _xml_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _XML_BAD.sub("", str(value))


def render_json(a: Answer) -> Response:
    body: dict[str, Any] = {"RESULT": _result(a.code)}
    if a.code == "INFO-000":
        body = {a.service: {"list_total_count": a.total, "RESULT": _result(a.code), "row": a.rows}}
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/json; charset=utf-8")


def render_xml(a: Answer) -> Response:
    result = ET.Element("RESULT")
    for tag, text in _result(a.code).items():
        ET.SubElement(result, tag).text = text
    root = result
    if a.code == "INFO-000":
        root = ET.Element(_xml_name(a.service))
        ET.SubElement(root, "list_total_count").text = str(a.total)
        root.append(result)
        names = {c: _xml_name(c) for c in a.columns}
        for row in a.rows:
            element = ET.SubElement(root, "row")
            for column, value in row.items():
                ET.SubElement(element, names[column]).text = _xml_text(value)
    body = ET.tostring(root, encoding="unicode")
    return Response('<?xml version="1.0" encoding="UTF-8"?>\n' + body, media_type="application/xml; charset=utf-8")


def _cell_value(value: Any) -> Any:
    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


def _put(sheet, row: int, column: int, value: Any) -> None:
    cell = sheet.cell(row=row, column=column, value=_cell_value(value))
    if isinstance(value, str):
        cell.data_type = "s"  # a value starting with '=' stays text, never a formula


def render_xls(a: Answer) -> Response:
    book = Workbook()
    sheet = book.active
    if a.code == "INFO-000":
        sheet.title = re.sub(r"[\[\]:*?/\\]", "_", a.service)[:31] or "row"
        for i, column in enumerate(a.columns, 1):
            _put(sheet, 1, i, column)
        for r, row in enumerate(a.rows, 2):
            for i, column in enumerate(a.columns, 1):
                _put(sheet, r, i, row[column])
        sheet = book.create_sheet("RESULT")
    else:
        sheet.title = "RESULT"
    for r, (name, value) in enumerate((("list_total_count", a.total), ("CODE", a.code), ("MESSAGE", CODES[a.code])), 1):
        _put(sheet, r, 1, name)
        _put(sheet, r, 2, value)
    out = io.BytesIO()
    book.save(out)
    name = f"{a.service or 'RESULT'}.xlsx"
    return Response(
        out.getvalue(),
        media_type=XLSX,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


RENDER = {"json": render_json, "xml": render_xml, "xls": render_xls}


def render_error(request: Request, exc: SmartCityError) -> Response:
    """Any platform error under /openapi/ as a RESULT code (HTTP 200, as Seoul's): nothing there → ERROR-300."""
    parts = request.url.path.split("/")
    kind = parts[3] if len(parts) > 3 and parts[3] in TYPES else "xml"
    return RENDER[kind](Answer("ERROR-300" if isinstance(exc, NotFound) else "ERROR-500"))


# --- the route --------------------------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)  # one path of segments, not an operation a schema can describe


@router.get("/openapi/{rest:path}")
async def openapi_call(request: Request, rest: str) -> Response:
    parts = rest.split("/")
    kind = parts[1] if len(parts) > 1 and parts[1] in TYPES else "xml"
    if len(parts) < 5 or not all(p.strip() for p in parts[:5]):
        return RENDER[kind](Answer("ERROR-300"))
    if parts[1] not in TYPES:
        return RENDER["xml"](Answer("ERROR-301"))
    key, _kind, service, start, end, *values = parts
    found = await run_in_threadpool(answer, request.app.state.db, key.strip(), service, start, end, values)
    return await run_in_threadpool(RENDER[kind], found)
