"""The open data tests' fixtures: a running server on each store for the real CKAN client."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer


@pytest.fixture
def live(app, db):
    """The app served by uvicorn on a free port (on SQLite and PostgreSQL, as `app` is)."""
    with LiveServer(app) as server:
        server.db = db
        yield server
