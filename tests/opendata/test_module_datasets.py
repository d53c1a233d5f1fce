"""The modules' own datasets are described in both of the catalogue's languages: Korean first, English
second, each shown on the dataset's page in its language."""

from __future__ import annotations

import html
import re

import pytest

from smartcity.assets import module as assets_module
from smartcity.core.module import datasets
from smartcity.opendata import feeds
from smartcity.participation import module as participation_module
from smartcity.reports import module as reports_module

HANGUL = re.compile(r"[\uac00-\ud7a3]")
DECLARED = datasets([reports_module, assets_module, participation_module])


def test_the_modules_declare_datasets():
    assert {d.name for d in DECLARED} >= {"reports.reports", "reports.daily-counts", "assets.assets"}


@pytest.mark.parametrize("declared", DECLARED, ids=lambda d: d.name)
def test_each_dataset_has_korean_and_english_titles_and_descriptions(declared):
    assert HANGUL.search(declared.title) and HANGUL.search(declared.description)
    assert declared.title_en and declared.description_en
    assert not HANGUL.search(declared.title_en) and not HANGUL.search(declared.description_en)


def test_the_dataset_page_shows_the_description_in_the_readers_language(db, client):
    reports = next(d for d in DECLARED if d.name == "reports.reports")
    with db.session() as s:
        name = feeds.catalogued(s, reports).name
    korean = html.unescape(client.get(f"/opendata/datasets/{name}").text)
    english = html.unescape(client.get(f"/opendata/datasets/{name}?lang=en").text)
    assert reports.description in korean and reports.description_en not in korean
    assert reports.description_en in english and reports.title_en in english
