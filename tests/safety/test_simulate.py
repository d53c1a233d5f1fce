"""The demo simulation: walkers move along their routes through the real engine, the elder's laps open a
danger-zone incident for Gangnam's control room, the child presses SOS now and then, the demo hook gives
the pages a recent path, and a serving process with SMARTCITY_SAFETY_SIMULATE runs it in the background."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from smartcity.core.city import load_profile
from smartcity.core.db import utcnow
from smartcity.core.geo import haversine_m
from smartcity.safety import service, simulate
from smartcity.safety.engine import get_engine, stop_engine
from smartcity.safety.models import DeviceState, Incident, PositionRow
from tests.conftest import eventually, make_settings, make_user


@pytest.fixture
def demo_world(db):
    make_user(db, "guardian", "guardian")
    list(service.demo(db, load_profile("seoul")))
    return db


def _positions(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(PositionRow))


def test_walkers_go_round_their_routes_at_their_speed():
    w = simulate.Walker("x", [(37.50, 127.05), (37.51, 127.05)], speed=10, step_s=2)
    points = [w.next_point() for _ in range(200)]
    steps = [haversine_m(*a, *b) for a, b in zip(points, points[1:], strict=False)]
    assert max(steps) <= 20.5  # never jumps further than speed × step
    assert w.laps >= 1  # back at the start and round again
    assert min(haversine_m(*p, 37.51, 127.05) for p in points) < 20
    levels = [w.drain() for _ in range(100)]
    assert levels == sorted(levels, reverse=True) and levels[-1] < levels[0]  # the battery empties slowly
    w.battery = 12
    assert w.drain() == 95  # and is recharged once low


def test_the_elders_route_crosses_the_danger_zone_centre():
    elder = simulate.demo_routes()["demo-elder-1"]
    assert service.DEMO_DANGER in elder
    assert simulate.demo_routes()["demo-child-1"] == service.DEMO_ROUTES["demo-child-1"]


def test_ticks_move_the_devices_and_open_incidents_for_the_control_room(demo_world, settings):
    db = demo_world
    sim = simulate.Simulation(db, settings, speed=8, step_s=5, sos_every=40)
    start = utcnow() - timedelta(hours=1)
    try:
        for i in range(160):  # 160 × 40 m: more than one lap of the elder's route
            for f in sim.tick(start + timedelta(seconds=5 * i)):
                f.result(10)
    finally:
        stop_engine(db)
    assert _positions(db) == 2 * 160
    with db.session() as s:
        incidents = {i.kind: i for i in s.scalars(select(Incident))}
        states = list(s.scalars(select(DeviceState)))
    assert set(incidents) == {"danger", "sos"}
    assert {i.district_code for i in incidents.values()} == {"11230"}  # Gangnam's control room
    assert all(st.fix_time is not None for st in states)


def test_the_demo_hook_gives_a_recent_path_and_one_open_emergency_once(demo_world):
    db = demo_world
    profile = load_profile("seoul")
    lines = list(simulate.demo(db, profile, minutes=10))
    assert "pressed SOS" in lines[-1]
    n = _positions(db)
    assert n > 100
    with db.session() as s:
        [inc] = s.scalars(select(Incident).where(Incident.kind == "sos")).all()
        assert inc.status == "open" and inc.district_code == "11230"
    assert "already" in list(simulate.demo(db, profile, minutes=10))[-1]  # re-running adds nothing
    assert _positions(db) == n


def test_a_serving_process_runs_the_simulation_when_the_setting_is_on(sqlite_url, tmp_path):
    from fastapi.testclient import TestClient

    from smartcity.app import create_app
    from smartcity.core.db import Database

    db = Database(sqlite_url)
    make_user(db, "guardian", "guardian")
    list(service.demo(db, load_profile("seoul")))
    off = create_app(make_settings(sqlite_url, tmp_path), db)
    with TestClient(off):
        assert getattr(off.state, "safety_simulation", None) is None
    app = create_app(make_settings(sqlite_url, tmp_path, safety_simulate=True), db)
    with TestClient(app):
        eventually(lambda: _positions(db) >= 2, timeout=15)
        engine = get_engine(db)
        first = {d: engine.state_of(engine.devices[d].device_id).lon for d in service.DEMO_ROUTES}
        eventually(
            lambda: all(engine.state_of(engine.devices[d].device_id).lon != first[d] for d in service.DEMO_ROUTES),
            timeout=15,
        )
        assert app.state.safety_simulation.running
    assert not app.state.safety_simulation.running  # stopped with the server
    db.dispose()
