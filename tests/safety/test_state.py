"""The columnar device table: a batch's result is computed without touching the table, committed after;
state rows round-trip through load; zone edits keep the states of the zones that remain; recovery after a
crash replays what the state rows had not caught up with."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartcity.core.geo import LocalPlane
from smartcity.core.intake import POSITION_SCHEMA, Columns
from smartcity.safety.rules import Rules, ZoneShape, to_ms, zone_shape
from smartcity.safety.state import DeviceTable

PLANE = LocalPlane((37.5665, 126.9780))
RULES = Rules(confirm_fixes=2, hysteresis_m=30, accuracy_max_m=150)
T0 = 1_772_582_400_000
HOME = ZoneShape(10, "safe", 1, "home", cx=0.0, cy=0.0, radius=100.0, size=100.0)
SCHOOL = ZoneShape(11, "safe", 1, "school", cx=2000.0, cy=0.0, radius=150.0, size=150.0)


def at_xy(x: float, y: float) -> tuple[float, float]:
    """(lat, lon) of a point on the plane."""
    return PLANE.lat0 + y / PLANE.ky, PLANE.lon0 + x / PLANE.kx


def batch(table: DeviceTable, fixes: list[dict]) -> Columns:
    cols = Columns.empty(POSITION_SCHEMA, len(fixes))
    for name in ("device_id", "person_id", "fix_time", "received_at", "lat", "lon", "accuracy", "battery"):
        dtype = POSITION_SCHEMA[name]
        default = np.nan if np.issubdtype(dtype, np.floating) else 0
        cols[name] = np.array([f.get(name, default) for f in fixes], dtype=dtype)
    cols["received_at"] = cols["fix_time"]
    cols["valid"] = np.array([f.get("valid", True) for f in fixes])
    cols["sos"] = np.array([f.get("sos", False) for f in fixes])
    cols["outside_city"] = np.array([f.get("outside", False) for f in fixes])
    cols["district"] = np.array([f.get("district", -1) for f in fixes], dtype=np.int32)
    cols["stored"] = np.array([f.get("stored", True) for f in fixes])
    cols["slot"] = table.slots_of(cols["device_id"], cols["person_id"])
    return cols


def fix(device: int, t: int, x: float, y: float = 0.0, **more) -> dict:
    lat, lon = at_xy(x, y)
    return {"device_id": device, "person_id": 1, "fix_time": T0 + t * 1000, "lat": lat, "lon": lon} | more


def new_table(*zones: ZoneShape) -> DeviceTable:
    table = DeviceTable(PLANE, RULES, low_battery=15, districts=["11110"])
    table.load([], list(zones or (HOME, SCHOOL)))
    return table


def run(table: DeviceTable, fixes: list[dict]):
    result = table.apply(batch(table, fixes))
    table.commit(result)
    return result


def test_apply_changes_nothing_until_commit():
    table = new_table()
    run(table, [fix(1, 0, 0), fix(1, 10, 0)])  # at home, confirmed
    slot = table.slot_of(1)
    before = table.state_rows([slot])
    result = table.apply(batch(table, [fix(1, 20, 2000), fix(1, 30, 2000)]))
    assert table.state_rows([slot]) == before  # a failed transaction leaves memory as it was
    assert [(e.kind, e.zone.id) for e in result.events] == [("departure", 10), ("arrival", 11)]
    assert [to_ms(e.at) for e in result.events] == [T0 + 20_000, T0 + 20_000]  # the first fix of each run
    table.commit(result)
    after = table.state_rows([slot])[0]
    assert after["fix_time"] == T0 + 30_000
    assert after["zones"]["11"]["confirmed"] == "in" and after["zones"]["10"]["confirmed"] == "out"
    with pytest.raises(RuntimeError):
        table.commit(result)  # computed on a state that has moved on


def test_changed_is_a_confirmed_zone_state_or_a_flag_moved_is_the_live_position():
    table = new_table()
    run(table, [fix(1, 0, 0), fix(1, 10, 0), fix(1, 20, 0)])  # settled at home
    result = run(table, [fix(1, 30, 5), fix(2, 30, 0, person_id=1)])
    slot1, slot2 = table.slot_of(1), table.slot_of(2)
    assert result.moved.tolist() == sorted([slot1, slot2])
    assert result.changed.tolist() == []  # device 1 moved within its zone; device 2 has only a candidate
    assert table.state_rows([slot2])[0]["zones"]["10"] == {
        "confirmed": None,
        "candidate": "in",
        "agreeing": 1,
        "since": T0 + 30_000,
    }
    confirmed = table.apply(batch(table, [fix(2, 40, 0), fix(1, 40, 5)]))
    assert confirmed.changed.tolist() == [slot2]
    rows = confirmed.state_rows(confirmed.changed)
    assert rows[0]["zones"]["10"]["confirmed"] == "in" and rows[0]["version"] == 1
    table.commit(confirmed)
    assert table.version_of([slot1, slot2]).tolist() == [0, 1]
    assert table.last_fix([slot1, slot2]).tolist() == [T0 + 40_000, T0 + 40_000]
    low = run(table, [fix(1, 50, 5, battery=12.0)])
    assert low.changed.tolist() == [slot1] and [e.kind for e in low.events] == ["low_battery"]
    assert low.events[0].data == {"battery": 12.0}


def test_late_duplicate_invalid_and_alarm_fixes():
    table = new_table()
    run(table, [fix(1, 100, 0, district=0)])
    result = run(
        table,
        [
            fix(1, 50, 2000, sos=True),  # late: its alarm counts, it moves nothing
            fix(1, 100, 9000),  # already stored (same device and time): the store says not newly stored
            fix(1, 120, 0, valid=False, sos=True),  # no position: the alarm is placed at the last known one
            fix(1, 130, 0, stored=False),  # a duplicate the store refused
        ],
    )
    assert result.live.tolist() == [False, False, False, False]
    sos = [(e.kind, e.row, e.data, round(e.lat, 6), e.district_code) for e in result.events]
    lat_home = round(at_xy(0, 0)[0], 6)
    assert sos == [
        ("sos", 0, {}, round(at_xy(2000, 0)[0], 6), None),
        ("sos", 2, {"fix_invalid": True}, lat_home, "11110"),
    ]
    assert table.state_rows([table.slot_of(1)])[0]["fix_time"] == T0 + 100_000


def test_a_device_twice_in_a_batch_is_taken_in_fix_time_order():
    one, two = new_table(), new_table()
    fixes = [fix(1, 0, 2000), fix(1, 10, 2000), fix(1, 40, 0), fix(1, 30, 0), fix(1, 20, 0)]
    together = run(one, fixes)
    apart = [run(two, [f]) for f in sorted(fixes, key=lambda f: f["fix_time"])]
    assert [(e.kind, e.at) for e in together.events] == [(e.kind, e.at) for r in apart for e in r.events]
    # Raised by the fix of t=30 (row 3), timed at the first fix that agreed (t=20).
    assert [(e.kind, e.row, to_ms(e.at)) for e in together.events] == [
        ("arrival", 3, T0 + 20_000),
        ("departure", 3, T0 + 20_000),
    ]
    assert one.state_rows([0]) == two.state_rows([0])


def test_state_rows_load_back_as_the_same_table():
    stream = [fix(d, t, 2000 if (t // 40) % 2 else 0, battery=20.0 - t / 10) for t in range(0, 100, 10) for d in (1, 2)]
    first = new_table()
    run(first, stream[:11])
    rows = first.state_rows(range(2))
    again = DeviceTable(PLANE, RULES, low_battery=15, districts=["11110"])
    again.load(rows, [HOME, SCHOOL])
    assert again.state_rows([again.slot_of(1), again.slot_of(2)]) == rows
    moved = new_table()
    moved.load([], [HOME, SCHOOL])
    run(moved, stream[:4])
    moved.load_states(rows[:1])  # another process moved device 1: just its state is replaced
    assert moved.state_rows([moved.slot_of(1)]) == rows[:1]
    rest_first, rest_again = run(first, stream[11:]), run(again, stream[11:])
    assert [(e.kind, e.device_id, e.at) for e in rest_first.events] == [
        (e.kind, e.device_id, e.at) for e in rest_again.events
    ]
    assert rest_first.events  # the rest of the stream does raise something


def test_state_rows_of_the_older_format_load():
    table = DeviceTable(PLANE, RULES, low_battery=15)
    table.load(
        [
            {
                "device_id": 1,
                "person_id": 1,
                "fix_time": None,
                "zones": {"10": {"s": "in", "c": "out", "n": 1, "t": "2026-03-04T00:00:10+00:00"}},
                "flags": {"low_battery": True, "silent": True},
            }
        ],
        [HOME, SCHOOL],
    )
    row = table.state_rows([table.slot_of(1)])[0]
    assert row["zones"] == {"10": {"confirmed": "in", "candidate": "out", "agreeing": 1, "since": T0 + 10_000}}
    assert row["flags"] == {"low_battery": True, "silent": True}
    result = run(table, [fix(1, 20, 300)])  # the second fix outside: the departure dates from the stored one
    assert [(e.kind, to_ms(e.at)) for e in result.events] == [("departure", T0 + 10_000)]
    assert table.state_rows([0])[0]["flags"] == {"low_battery": True}  # a live fix clears "silent"


def test_zone_edits_keep_the_states_of_the_zones_that_remain():
    table = new_table()
    run(table, [fix(1, 0, 0), fix(1, 10, 0), fix(1, 20, 2000), fix(1, 30, 2000)])
    pending = table.apply(batch(table, [fix(1, 40, 0)]))
    park = ZoneShape(12, "safe", 1, "park", cx=1000.0, cy=0.0, radius=50.0, size=50.0)
    table.set_zones(1, [SCHOOL, park])
    table.commit(pending)  # computed before the edit: its states go to the zones that are still there
    zones = table.state_rows([0])[0]["zones"]
    assert set(zones) == {"11"}
    assert zones["11"]["confirmed"] == "in" and zones["11"]["candidate"] == "out"
    danger = zone_shape(
        type(
            "Z",
            (),
            {
                "id": 20,
                "kind": "danger",
                "person_id": None,
                "name": "site",
                "schedule": None,
                "radius_m": 40.0,
                "lat": at_xy(1000, 0)[0],
                "lon": at_xy(1000, 0)[1],
                "geometry": None,
            },
        )(),
        PLANE,
    )
    table.set_danger_zones([danger])
    result = run(table, [fix(1, 50, 1000), fix(1, 60, 1000)])
    assert [(e.kind, e.zone.id) for e in result.events] == [("departure", 11), ("danger", 20)]


def test_recovery_replays_what_the_state_rows_missed():
    """The pipeline writes a device's state row when its zone or flag state changes and checkpoints moved
    devices now and then; after a crash the table loads those rows and replays newer positions."""
    data = Path(__file__).parent / "data" / "recorded_stream.json.gz"
    with gzip.open(data, "rt") as f:
        stream = json.load(f)
    plane = LocalPlane(tuple(stream["center"]))
    zones = [zone_shape(_Zone(z), plane) for z in stream["zones"]]

    def table_of() -> DeviceTable:
        t = DeviceTable(plane, Rules(**stream["rules"]), stream["low_battery"], stream["districts"])
        t.load([], zones)
        return t

    names = stream["columns"]
    fixes = [dict(zip(names, f, strict=True)) for f in stream["fixes"][:6000]]
    live = table_of()
    store: dict[int, dict] = {}  # device → its state row as written
    positions: dict[tuple, dict] = {}
    announced = set()
    for number, start in enumerate(range(0, len(fixes), 200)):
        part = fixes[start : start + 200]
        cols = _columns(live, part, positions)
        result = live.apply(cols)
        for row in result.state_rows(result.changed):
            store[row["device_id"]] = row
        live.commit(result)
        announced |= {(e.kind, e.device_id, e.zone.id if e.zone else None, e.at) for e in result.events}
        if number % 7 == 0:  # a checkpoint
            for row in live.state_rows(result.moved):
                store[row["device_id"]] = row
    crashed = table_of()
    crashed.load(store.values(), zones)
    newer = [
        p
        for p in positions.values()
        if p["fix_time"] > ((store.get(p["device_id"]) or {}).get("fix_time") or -1) and p["valid"]
    ]
    slots = sorted(live.slots.values())
    devices = [live.state_rows([s])[0]["device_id"] for s in slots]

    def rows_of(table: DeviceTable) -> list[dict]:
        return table.state_rows([table.slot_of(d) for d in devices])

    behind = sum(a != b for a, b in zip(rows_of(crashed), live.state_rows(slots), strict=True))
    recovered = crashed.recover(_columns(crashed, newer, {}))
    assert rows_of(crashed) == live.state_rows(slots)
    assert behind > 20 and len(newer) > 100  # the crash did lose live positions, which were replayed
    # Every transition wrote its state row in its own transaction: nothing is raised that was not announced
    # (and whatever is raised again goes through the event dedupe).
    assert {(e.kind, e.device_id, e.zone.id if e.zone else None, e.at) for e in recovered.events} <= announced


class _Zone:
    def __init__(self, z: dict):
        self.__dict__.update(z)
        self.schedule = None
        self.geometry = json.dumps(z["geometry"]) if z["geometry"] else None


def _columns(table: DeviceTable, part: list[dict], positions: dict) -> Columns:
    cols = Columns.empty(POSITION_SCHEMA, len(part))
    for name in ("device_id", "person_id", "fix_time", "received_at", "district"):
        cols[name] = np.array([p[name] for p in part], dtype=POSITION_SCHEMA[name])
    for name in ("lat", "lon", "speed", "accuracy", "battery"):
        cols[name] = np.array([np.nan if p[name] is None else p[name] for p in part], dtype=np.float64)
    cols["valid"] = np.array([p["valid"] for p in part], dtype=bool)
    cols["outside_city"] = np.array([p["outside_city"] for p in part], dtype=bool)
    cols["sos"] = np.array([p["alarm"] == "sos" for p in part], dtype=bool)
    stored = []
    for p in part:
        key = (p["device_id"], p["fix_time"])
        stored.append(key not in positions)
        positions.setdefault(key, p)
    cols["stored"] = np.array(stored, dtype=bool)
    cols["slot"] = table.slots_of(cols["device_id"], cols["person_id"])
    return cols


def test_state_columns_are_the_state_rows_as_executemany_columns():
    """The fast form (cached zone JSON) says what state_rows says, batch after batch."""
    data = Path(__file__).parent / "data" / "recorded_stream.json.gz"
    with gzip.open(data, "rt") as f:
        stream = json.load(f)
    plane = LocalPlane(tuple(stream["center"]))
    table = DeviceTable(plane, Rules(**stream["rules"]), stream["low_battery"], stream["districts"])
    table.load([], [zone_shape(_Zone(z), plane) for z in stream["zones"]])
    names = stream["columns"]
    fixes = [dict(zip(names, f, strict=True)) for f in stream["fixes"][:4000]]
    positions: dict = {}

    def as_rows(columns: dict) -> list[dict]:
        rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        for row in rows:
            row["zones"], row["flags"] = json.loads(row["zones"]), json.loads(row["flags"])
        return rows

    compared = 0
    for start in range(0, len(fixes), 150):
        result = table.apply(_columns(table, fixes[start : start + 150], positions))
        assert as_rows(result.state_columns(result.moved)) == result.state_rows(result.moved)
        table.commit(result)
        every = sorted(table.slots.values())
        assert as_rows(table.state_columns(every)) == table.state_rows(every)
        compared += len(result.moved)
    assert compared > 3000


def test_many_zone_edits_keep_states_and_space():
    table = new_table()
    run(table, [fix(1, 0, 0), fix(1, 10, 0), fix(2, 0, 2000), fix(2, 10, 2000)])
    before = table.state_rows([0, 1])
    for _ in range(9000):  # each edit leaves the old segments behind until they are written again compactly
        table.set_zones(1, [HOME, SCHOOL])
    assert table.state_rows([0, 1]) == before
    assert table.pairs_used <= 4 * 4096 + 4
    result = run(table, [fix(1, 20, 2000), fix(1, 30, 2000)])
    assert [(e.kind, e.zone.id) for e in result.events] == [("departure", 10), ("arrival", 11)]


def test_state_rows_round_trip_through_the_store(db):
    """Zones and state rows read from the store (ORM rows, times as datetimes) load; the state the table
    writes reads back as the same state, on both stores."""
    from sqlalchemy import select

    from smartcity.core.geo import LocalPlane as Plane
    from smartcity.safety.models import DeviceState, Zone
    from smartcity.safety.rules import from_ms
    from tests.safety.helpers import HOME, SCHOOL, make_world

    world = make_world(db)
    plane = Plane(HOME)
    with db.session() as s:
        zones = list(s.scalars(select(Zone).where(Zone.active)))
        table = DeviceTable(plane, RULES, low_battery=15, districts=["11230"])
        table.load(list(s.scalars(select(DeviceState))), zones)
    place = {"device_id": world.device_id, "person_id": world.person_id, "district": 0, "accuracy": 8.0}
    fixes = [
        place | {"fix_time": T0 + i * 10_000, "lat": lat, "lon": lon, "battery": battery}
        for i, ((lat, lon), battery) in enumerate([(HOME, 30.0), (HOME, 20.0), (SCHOOL, 12.0), (SCHOOL, 11.0)])
    ]
    result = run(table, fixes)
    assert [(e.kind, e.row) for e in result.events] == [("low_battery", 2), ("arrival", 3)]
    written = result.state_rows([table.slot_of(world.device_id)])[0]
    assert written["zones"][str(world.school_zone)]["confirmed"] == "in"
    with db.session() as s:
        row = s.get(DeviceState, world.device_id)
        for name, value in written.items():
            setattr(row, name, from_ms(value) if name in ("fix_time", "received_at") and value else value)
    with db.session() as s:
        again = DeviceTable(plane, RULES, low_battery=15, districts=["11230"])
        again.load(list(s.scalars(select(DeviceState))), list(s.scalars(select(Zone).where(Zone.active))))
    assert again.state_rows([again.slot_of(world.device_id)]) == [written]


# --- the table against the rules applied one fix at a time (hypothesis) --------------------------------------


def reference(fixes: list[dict], zones_of: dict, rules: Rules, low: float) -> tuple[list, dict]:
    """The rules applied fix by fix, as the per-position engine did (each batch: newly stored fixes only, each
    device's in fix-time order, devices by first appearance). Returns (events, zone states by device)."""
    from smartcity.safety.rules import classify, step_zone, zone_event

    states: dict = {}
    events = []
    for batch_fixes in fixes:
        by_device: dict = {}
        for i, f in enumerate(batch_fixes):
            if f["stored"]:
                by_device.setdefault(f["device_id"], []).append((i, f))
        for device, items in by_device.items():
            items.sort(key=lambda item: item[1]["fix_time"])
            st = states.setdefault(device, {"fix_time": None, "flags": set(), "zones": {}})
            for i, f in items:
                if f.get("sos"):
                    events.append((i, "sos", device, None, f["fix_time"]))
                if not f.get("valid", True):
                    continue
                if st["fix_time"] is not None and f["fix_time"] <= st["fix_time"]:
                    continue
                st["fix_time"] = f["fix_time"]
                battery = f.get("battery")
                if battery is not None:
                    if battery <= low and "low" not in st["flags"]:
                        st["flags"].add("low")
                        events.append((i, "low_battery", device, None, f["fix_time"]))
                    elif battery >= low + 5:
                        st["flags"].discard("low")
                x, y = PLANE.xy(f["lat"], f["lon"])
                acc = f.get("accuracy")
                for zone in zones_of[f["person_id"]]:
                    verdict = classify(zone, x, y, None if acc != acc else acc, rules)
                    new, transition = step_zone(st["zones"].get(zone.id), verdict, f["fix_time"], rules)
                    st["zones"][zone.id] = new
                    kind = zone_event(zone.kind, transition) if transition else None
                    if kind:
                        events.append((i, kind, device, zone.id, new.since))
    zone_states = {
        d: {z: tuple(s) for z, s in st["zones"].items() if s != (None, None, 0, None)} for d, st in states.items()
    }
    return events, zone_states


def _polygon_zone():
    from shapely.geometry import Polygon

    notch = Polygon([(900, -150), (1300, -150), (1300, 150), (1100, 0), (900, 150)])
    return ZoneShape(12, "safe", 2, "yard", polygon=notch, boundary=notch.boundary, size=(notch.area / 3.1416) ** 0.5)


DANGER = ZoneShape(30, "danger", None, "river", cx=600.0, cy=0.0, radius=60.0, size=60.0)

fix_strategy = st.fixed_dictionaries(
    {
        "device": st.integers(1, 3),
        "t": st.integers(0, 40),
        "x": st.sampled_from([-300.0, 0.0, 90.0, 130.0, 600.0, 640.0, 1000.0, 1150.0, 1250.0, 1400.0, 2000.0]),
        "jitter": st.floats(-25, 25),
        "accuracy": st.sampled_from([None, 5.0, 20.0, 60.0, 200.0]),
        "battery": st.sampled_from([None, 10.0, 14.0, 15.0, 19.5, 20.0, 60.0]),
        "valid": st.booleans().map(lambda b: b or None),
        "sos": st.integers(0, 15).map(lambda n: n == 0),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    stream=st.lists(fix_strategy, min_size=1, max_size=60),
    cuts=st.lists(st.integers(1, 59), max_size=6),
    confirm=st.integers(1, 3),
    hysteresis=st.sampled_from([10.0, 30.0, 50.0]),
)
def test_the_table_is_the_rules_fix_by_fix(stream, cuts, confirm, hysteresis):
    rules = Rules(confirm_fixes=confirm, hysteresis_m=hysteresis)
    zones = [HOME, SCHOOL, _polygon_zone(), DANGER]
    zones_of = {1: [HOME, SCHOOL, DANGER], 2: [_polygon_zone(), DANGER]}
    table = DeviceTable(PLANE, rules, low_battery=15)
    table.load([], zones)
    seen: set = set()
    batches = []
    bounds = [0, *sorted({c for c in cuts if c < len(stream)}), len(stream)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        part = []
        for f in stream[a:b]:
            person = 1 if f["device"] < 3 else 2
            at = fix(f["device"], f["t"], f["x"] + f["jitter"], person_id=person, valid=f["valid"] is not None)
            at |= {"sos": f["sos"], "accuracy": np.nan if f["accuracy"] is None else f["accuracy"]}
            if f["battery"] is not None:
                at["battery"] = f["battery"]
            at["stored"] = (f["device"], f["t"]) not in seen
            seen.add((f["device"], f["t"]))
            part.append(at)
        batches.append(part)
    expected, expected_states = reference(batches, zones_of, rules, 15)
    got = []
    for part in batches:
        result = run(table, part)
        got += [(e.row, e.kind, e.device_id, e.zone.id if e.zone else None, to_ms(e.at)) for e in result.events]
    assert got == expected
    states = {d: table.zone_states(table.slot_of(d)) for d in expected_states}
    assert states == {d: {str(z): s for z, s in zs.items()} for d, zs in expected_states.items()}


def test_loading_the_zones_again_keeps_every_device_state():
    park = ZoneShape(12, "safe", 1, "park", cx=1000.0, cy=0.0, radius=50.0, size=50.0)
    table = new_table(HOME, SCHOOL, park)
    run(table, [fix(1, 0, 0), fix(1, 10, 0), fix(1, 20, 2000)])
    before = table.state_rows([0])
    assert before[0]["zones"]["10"]["confirmed"] == "in" and before[0]["zones"]["11"]["candidate"] == "in"
    table.load([], [park, SCHOOL, HOME])  # the zones read again (another order: another index for each)
    assert table.state_rows([0]) == before
    result = run(table, [fix(1, 30, 2000)])
    assert [(e.kind, e.zone.id) for e in result.events] == [("arrival", 11), ("departure", 10)]  # the zones' order


def test_a_first_confirmed_out_moves_the_device_but_is_not_written_with_the_batch():
    """Only what events and the absence check read is written in the batch's transaction: a device's first
    confirmation that it is away from a zone raises nothing and reads as "not in" either way; it is
    checkpointed (and rebuilt by replay after a crash)."""
    table = new_table()
    run(table, [fix(1, 0, 5000)])  # a candidate "out" for every zone
    slot = table.slot_of(1)
    first_out = run(table, [fix(1, 10, 5000)])
    assert first_out.moved.tolist() == [slot] and first_out.changed.tolist() == []
    assert {z["confirmed"] for z in table.state_rows([slot])[0]["zones"].values()} == {"out"}
    assert first_out.events == []
    run(table, [fix(1, 20, 0)])
    arrived = run(table, [fix(1, 30, 0)])
    assert arrived.changed.tolist() == [slot] and [e.kind for e in arrived.events] == ["arrival"]
