"""Fixtures the Community Mapping tests share."""

from __future__ import annotations

import pytest

from smartcity.core.context import attach
from tests.conftest import make_key, make_settings


@pytest.fixture
def rdb(db, tmp_path):
    """The `db` fixture with the reports service configured (uploads under tmp_path); `rdb.settings` are its
    settings."""
    settings = make_settings(db.url, tmp_path)
    attach(db, settings)
    db.settings = settings
    return db


@pytest.fixture
def key(db) -> str:
    """An Open311 partner's API key (scope `open311`), as `smartcity open311 keys create` makes one."""
    return make_key(db, scope="open311")
