"""Fixtures the Community Mapping tests share."""

from __future__ import annotations

import pytest

from smartcity.reports import service as S
from tests.conftest import make_settings


@pytest.fixture
def rdb(db, tmp_path):
    """The `db` fixture with the reports service configured (uploads under tmp_path); `rdb.settings` are its
    settings."""
    settings = make_settings(db.url, tmp_path)
    S.configure(db, settings)
    db.settings = settings
    return db
