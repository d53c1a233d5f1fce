"""The anti-drift zone rule and schedules as pure functions: real transitions happen once, GPS jitter
around a boundary does not make alert storms (hypothesis)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartcity.core.errors import InvalidInput
from smartcity.safety.rules import (
    IN,
    NONE,
    OUT,
    Rules,
    ZoneSet,
    ZoneShape,
    ZoneState,
    classify,
    parse_schedule,
    step_zone,
    step_zones,
    to_ms,
)

RULES = Rules(confirm_fixes=2, hysteresis_m=30, accuracy_max_m=150)
CIRCLE = ZoneShape(1, "safe", 1, "school", cx=0, cy=0, radius=100, size=100)
T0 = datetime(2026, 3, 4, 0, 0, tzinfo=UTC)


def run(distances, accuracies, zone=CIRCLE, state=None, rules=RULES):
    transitions = []
    for i, (d, acc) in enumerate(zip(distances, accuracies, strict=True)):
        verdict = classify(zone, d, 0.0, acc, rules)
        state, t = step_zone(state, verdict, to_ms(T0 + timedelta(seconds=10 * i)), rules)
        if t:
            transitions.append(t)
    return state, transitions


def test_a_crossing_in_and_out_is_one_arrival_and_one_departure():
    path = [300, 250, 200, 150, 90, 50, 0, 50, 90, 130, 160, 200, 250]
    state, transitions = run(path, [10] * len(path))
    assert transitions == [(None, "out"), ("out", "in"), ("in", "out")]
    assert state.confirmed == "out"


def test_a_single_stray_fix_does_not_count():
    _, transitions = run([0, 0, 0, 400, 0, 0, 0], [10] * 7)
    assert transitions == [(None, "in")]


def test_the_event_is_timed_at_the_first_agreeing_fix():
    state, _ = run([300, 300, 0, 0], [10] * 4)
    assert state.confirmed == "in" and state.since == to_ms(T0 + timedelta(seconds=20))


def test_accuracy_decides_what_a_fix_may_say():
    assert classify(CIRCLE, 50, 0, 10, RULES) == "in"
    assert classify(CIRCLE, 50, 0, 160, RULES) is None  # worse than the limit
    assert classify(CIRCLE, 300, 0, 10, RULES) == "out"
    assert classify(CIRCLE, 140, 0, 20, RULES) is None  # inside the hysteresis band (100 + 30 + 20)
    assert classify(CIRCLE, 160, 0, 20, RULES) == "out"
    assert classify(CIRCLE, 200, 0, 90, RULES) is None  # the accuracy circle reaches the band
    small = ZoneShape(2, "safe", 1, "bench", cx=0, cy=0, radius=25, size=25)
    assert classify(small, 0, 0, 60, RULES) is None  # a fix coarser than the zone says nothing


def test_polygon_zones_use_the_distance_to_their_edge():
    from shapely.geometry import box

    square = box(-100, -100, 100, 100)
    zone = ZoneShape(3, "safe", 1, "yard", polygon=square, boundary=square.boundary, size=113)
    assert zone.distance(0, 0) == pytest.approx(-100)
    assert zone.distance(150, 0) == pytest.approx(50)
    assert classify(zone, 0, 0, 10, RULES) == "in"
    assert classify(zone, 200, 0, 10, RULES) == "out"


jitter = st.lists(st.tuples(st.floats(-1, 1), st.floats(2, 60)), min_size=1, max_size=200)


@settings(max_examples=300, deadline=None)
@given(noise=jitter, start_inside=st.booleans())
def test_jitter_around_the_boundary_makes_at_most_one_transition(noise, start_inside):
    # Positions wander within half the hysteresis margin either side of the edge, with any accuracy.
    margin = RULES.margin(CIRCLE)
    distances = [CIRCLE.radius + u * margin / 2 for u, _ in noise]
    accuracies = [acc for _, acc in noise]
    state = ZoneState("in" if start_inside else "out")
    _, transitions = run(distances, accuracies, state=state)
    # Starting inside: never leaves. Starting outside: may arrive (points ≤ r are inside), never leaves again.
    assert len(transitions) <= (0 if start_inside else 1)


@settings(max_examples=300, deadline=None)
@given(points=st.lists(st.tuples(st.floats(0, 400), st.floats(0, 200)), min_size=1, max_size=300))
def test_any_sequence_needs_confirm_fixes_per_transition(points):
    _, transitions = run([d for d, _ in points], [a for _, a in points])
    assert len(transitions) <= len(points) // RULES.confirm_fixes
    # Transitions alternate: never two arrivals in a row.
    states = [t[1] for t in transitions]
    assert all(a != b for a, b in zip(states, states[1:], strict=False))


def test_schedules():
    windows = parse_schedule([{"days": [0, 1, 2, 3, 4], "start": "08:30", "end": "15:00"}])
    wednesday_9 = datetime(2026, 3, 4, 9, 0)
    assert windows[0].contains(wednesday_9)
    assert not windows[0].contains(wednesday_9.replace(hour=15))
    assert not windows[0].contains(datetime(2026, 3, 7, 9, 0))  # Saturday
    for bad in (
        [{"days": [7], "start": "08:30", "end": "15:00"}],
        [{"days": [1], "start": "15:00", "end": "08:00"}],
        [{"days": [1], "start": "9h", "end": "10:00"}],
        "weekdays",
    ):
        with pytest.raises(InvalidInput):
            parse_schedule(bad)


def test_the_first_agreeing_fix_stays_the_since_until_a_fix_agrees_again():
    state, transitions = run([300, 300, 0, 0], [10] * 4)
    assert transitions == [(None, "out"), ("out", "in")]
    assert state == ZoneState("in", None, 0, to_ms(T0 + timedelta(seconds=20)))
    settled, transition = step_zone(state, "in", to_ms(T0 + timedelta(seconds=40)), RULES)
    assert transition is None and settled == ZoneState("in") and settled.settled()
    assert ZoneState.from_json(state.as_json()) == state
    assert state.as_json() == {"confirmed": "in", "candidate": None, "agreeing": 0, "since": to_ms(T0) + 20_000}


def _zones():
    from shapely.geometry import Polygon

    notch = Polygon([(-100, -100), (100, -100), (100, 100), (0, 10), (-100, 100)])  # not convex: its box is not it
    return [
        CIRCLE,
        ZoneShape(2, "safe", 1, "bench", cx=40, cy=-20, radius=25, size=25),
        ZoneShape(
            3, "danger", None, "yard", polygon=notch, boundary=notch.boundary, size=(notch.area / 3.14159) ** 0.5
        ),
    ]


@settings(max_examples=200, deadline=None)
@given(
    fixes=st.lists(
        st.tuples(
            st.floats(-400, 400),
            st.floats(-400, 400),
            st.one_of(st.none(), st.floats(0, 400)),
            st.integers(0, 2),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_vectorised_verdicts_are_classify_for_every_pair(fixes):
    zones = _zones()
    zone_set = ZoneSet(zones, RULES)
    x = np.array([f[0] for f in fixes])
    y = np.array([f[1] for f in fixes])
    acc = np.array([np.nan if f[2] is None else f[2] for f in fixes])
    which = np.array([f[3] for f in fixes], dtype=np.int64)
    got = zone_set.verdicts(which, x, y, acc)
    codes = {None: NONE, "in": IN, "out": OUT}
    expected = [codes[classify(zones[z], xi, yi, a, RULES)] for xi, yi, a, z in fixes]
    assert got.tolist() == expected


@settings(max_examples=300, deadline=None)
@given(
    runs=st.lists(st.lists(st.sampled_from([None, "in", "out"]), min_size=1, max_size=12), min_size=1, max_size=20),
    confirm=st.integers(1, 3),
)
def test_step_zones_is_step_zone_over_arrays(runs, confirm):
    """Many zones at once, one verdict each per step, against step_zone one zone at a time."""
    rules = Rules(confirm_fixes=confirm)
    codes = {None: NONE, "in": IN, "out": OUT}
    names = {NONE: None, IN: "in", OUT: "out"}
    no_time = -1
    states = [None] * len(runs)
    arrays = [np.zeros(len(runs), np.int8), np.zeros(len(runs), np.int8), np.zeros(len(runs), np.int64)]
    arrays.append(np.full(len(runs), no_time, np.int64))
    for step in range(max(len(r) for r in runs)):
        at = 1000 * (step + 1)
        verdicts = [r[step] if step < len(r) else None for r in runs]
        expected = [step_zone(s, v, at, rules) for s, v in zip(states, verdicts, strict=True)]
        v = np.array([codes[x] for x in verdicts], dtype=np.int8)
        act = np.flatnonzero(v != NONE)
        conf, cand, agr, since, transition = step_zones(
            *(a[act] for a in arrays), v[act], np.full(len(act), at), rules, no_time
        )
        for a, new in zip(arrays, (conf, cand, agr, since), strict=True):
            a[act] = new
        moved = np.zeros(len(runs), dtype=bool)
        moved[act] = transition
        for i, (state, t) in enumerate(expected):
            got = ZoneState(
                names[int(arrays[0][i])],
                names[int(arrays[1][i])],
                int(arrays[2][i]),
                None if arrays[3][i] == no_time else int(arrays[3][i]),
            )
            assert got == state
            assert moved[i] == (t is not None)
        states = [s for s, _ in expected]


def test_the_confirmed_state_reads_from_both_stored_forms():
    from smartcity.safety.rules import confirmed_of

    assert confirmed_of(ZoneState("in", "out", 1, 5).as_json()) == "in"
    assert confirmed_of({"s": "out", "c": None, "n": 0, "t": None}) == "out"
    assert confirmed_of(None) is None and confirmed_of({}) is None


def test_an_event_raised_again_has_the_same_dedupe_key():
    from smartcity.safety.rules import Raised

    first = Raised("arrival", 1, 7, T0, 37.5, 127.0, CIRCLE, row=3)
    again = Raised("arrival", 1, 7, T0, 37.5001, 127.0, CIRCLE, row=0)  # replayed: another batch row
    assert first.dedupe_key() == again.dedupe_key() == f"arrival:7:1:{to_ms(T0)}"
    assert Raised("departure", 1, 7, T0, 37.5, 127.0, CIRCLE).dedupe_key() != first.dedupe_key()
    assert Raised("sos", 1, 7, T0, None, None).dedupe_key() == f"sos:7::{to_ms(T0)}"
