"""Helpers the catalogue pages' tests share: a small file of Gangnam's litter bins (with positions and one
empty size), making a dataset and loading a file into it, and axe-core's serious findings on a page."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from smartcity.opendata import publishing
from smartcity.opendata.models import Organisation
from tests.opendata.helpers import PUBLISHER

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
BINS = (
    "연번,자치구,설치위치,수거 종류,위도,경도,용량\n"
    "1,강남구,테헤란로 152,일반쓰레기,37.5006,127.0364,120\n"
    "2,강남구,선릉로 424,재활용,37.5041,127.0490,80\n"
    "3,강남구,압구정로 429,일반쓰레기,37.5271,127.0440,200\n"
    "4,서초구,강남대로 373,재활용,37.4966,127.0276,\n"
).encode()


def dataset(db, name: str, title_ko: str, title_en: str = "", **options) -> None:
    """The dataset `name` described (published, as save_dataset makes it), with an organisation 'env'."""
    with db.session() as s:
        if s.scalar(select(Organisation.id).where(Organisation.name == "env")) is None:
            s.add(
                Organisation(uid=f"org-{name}", name="env", title_ko="기후환경과", title_en="Climate and Environment")
            )
            s.flush()
        publishing.save_dataset(
            s, PUBLISHER, publishing.DatasetInfo(name, title_ko=title_ko, title_en=title_en, **options)
        )


def load(db, name: str, data: bytes, filename: str) -> publishing.Published:
    with db.session() as s:
        return publishing.publish_file(s, PUBLISHER, name, data, filename)


def serious_axe_findings(page) -> list[tuple[str, list]]:
    """axe-core's serious and critical violations on the page as it is now: (rule, first targets)."""
    assert AXE.exists(), "run `npm ci` in web/ (axe-core is a devDependency)"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        (v["id"], [n["target"] for n in v["nodes"][:3]])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
