"""Fixtures the safety tests share."""

from __future__ import annotations

from datetime import timedelta

import pytest

from smartcity.core.db import utcnow
from smartcity.safety.engine import get_engine, stop_engine
from tests.safety.helpers import HOME, SCHOOL, feed, fix, make_world


@pytest.fixture
def engine(db, settings):
    """The store's position engine as the app makes it (it follows the change events), stopped afterwards."""
    eng = get_engine(db, settings)
    yield eng
    stop_engine(db)


@pytest.fixture
def world(db, client):
    """The small world of helpers.make_world with the app running and four fixes walked from home to school;
    `world.engine` is the app's engine."""
    w = make_world(db)
    engine = get_engine(db)  # the app's engine, started with the app
    start = utcnow() - timedelta(minutes=10)
    for i, point in enumerate([HOME, (37.4970, 127.0620), (37.4990, 127.0590), SCHOOL]):
        feed(engine, fix(w.device, start + timedelta(minutes=i), point, battery=70.0))
    w.engine = engine
    return w
