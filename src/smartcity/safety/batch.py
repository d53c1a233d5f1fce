"""A batch of positions through the device table: the rules over columns (`apply_batch`, which
`DeviceTable.apply` calls) and what the batch did (`BatchResult`, which `DeviceTable.commit` applies).

Order is the per-position engine's: within a batch, each device's newly stored fixes in fix-time order (the
batch is cut in rounds: the k-th fix of every device in round k, so each round's devices are distinct and
every update is one scatter), devices in order of first appearance; duplicates of an earlier row (same device
and fix time) and rows the store did not newly store are skipped. A fix not newer than the device's last one
still raises its SOS but moves nothing. Python objects are made only for what a batch raises."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from smartcity.safety.rules import IN, NONE, VERDICT_NAMES, Raised, from_ms, step_zones, zone_event

if TYPE_CHECKING:
    from smartcity.safety.state import DeviceTable

NO_TIME = np.iinfo(np.int64).min  # a time column's "none"
LOW_BATTERY, OUTSIDE_CITY, SILENT = 1, 2, 4  # flag bits
FLAG_NAMES = {"low_battery": LOW_BATTERY, "outside_city": OUTSIDE_CITY, "silent": SILENT}
BATTERY_RESET = 5  # the low-battery flag clears at the threshold plus this (no alert per percent of wobble)


def segments(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indices of the ranges [start, start + count) laid end to end."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.repeat(np.asarray(starts, dtype=np.int64) - (ends - counts), counts) + np.arange(total)


def none_if_nan(value: float) -> float | None:
    return None if value != value else float(value)  # NaN → None


class BatchResult:
    """What a batch did, computed by `DeviceTable.apply` and applied by `DeviceTable.commit`.

    `live`: per batch row, whether it moved its device's live state; `events`: what the batch raised, in
    today's order (each with `row`, its batch row); `changed`: slots whose flags changed or whose confirmed state
    of a zone went into or out of "in" (their state rows belong in the batch's transaction: what its events say
    is stored with them); `moved`: slots whose live position changed (checkpointed). Candidates, the live
    position and a first "out" of a slot that is not `changed` are rebuilt after a crash by replaying the
    positions newer than its state row (`recover`).

    `state_rows(slots)` gives each row's `version` plus one (the row is being written); commit keeps that."""

    def __init__(
        self,
        table: DeviceTable,
        live: np.ndarray,
        events: list[Raised],
        slots: np.ndarray,
        devices: dict[str, np.ndarray],
        counts: np.ndarray,
        pairs: np.ndarray,
        pair_state: dict[str, np.ndarray],
        changed: np.ndarray,
        moved: np.ndarray,
    ):
        self.table = table
        self.live = live
        self.events = events
        self.slots = slots  # the batch's slots, sorted: the rows of `devices`
        self.devices = devices  # their columns after the batch
        self.counts = counts  # their number of zones
        self.pairs = pairs  # their pair indices (in the table's layout at apply time)
        self.pair_state = pair_state  # the zone states after the batch, one per pair
        self.changed = changed
        self.moved = moved
        self.layout = table.layout
        self.generation = table.generation
        self.written: set[int] = set()  # rows of `devices` whose state rows were asked for

    def _writing(self, slots: Iterable[int] | np.ndarray) -> np.ndarray:
        """The rows of `devices` of these slots, their versions moved on once (the state row is being written;
        on commit memory's version follows)."""
        slots = np.asarray(slots, dtype=np.int64)
        local = np.searchsorted(self.slots, slots)
        if len(slots) and (local.max() >= len(self.slots) or not np.array_equal(self.slots[local], slots)):
            raise ValueError("a slot that is not in this batch")
        version = self.devices["version"]
        for i in set(local.tolist()) - self.written:
            version[i] += 1
            self.written.add(i)
        return local

    def state_rows(self, slots: Iterable[int] | np.ndarray) -> list[dict]:
        """The safety_device_state values of these slots (of this batch) as the batch leaves them."""
        local = self._writing(slots)
        starts = np.cumsum(self.counts) - self.counts
        return [
            self.table.row_of(
                {name: values[i] for name, values in self.devices.items()},
                self.pair_state,
                range(int(starts[i]), int(starts[i] + self.counts[i])),
            )
            for i in local.tolist()
        ]

    def state_columns(self, slots: Iterable[int] | np.ndarray) -> dict[str, list]:
        """state_rows as columns of plain values ready for a driver's executemany (zones and flags as JSON
        text): the fast form, for many rows."""
        local = self._writing(slots)
        starts = np.cumsum(self.counts) - self.counts
        slots = self.slots[local]
        return self.table.columns_of(self.devices, local, slots, self.pair_state, starts[local], self.counts[local])


def apply_batch(table: DeviceTable, cols: Any) -> BatchResult:
    """Run a batch (core.intake.Columns of positions, with `slot` set) through the table's rules; the table is
    not changed."""
    n = cols.n
    slot_col = np.asarray(cols["slot"], dtype=np.int64)
    fix_col = np.asarray(cols["fix_time"], dtype=np.int64)
    considered = np.asarray(cols["stored"], dtype=bool) if "stored" in cols else np.ones(n, dtype=bool)
    live = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(considered)
    if not len(rows):
        empty = np.zeros(0, dtype=np.int64)
        return BatchResult(table, live, [], empty, {}, empty, empty, {"zone": empty}, empty, empty)
    # Today's order: devices by first appearance, each one's fixes by time, then by row (the first copy of
    # a duplicate is the one kept).
    slots, first, local_of = np.unique(slot_col[rows], return_index=True, return_inverse=True)
    device_rank = np.argsort(np.argsort(first))[local_of]
    order = np.lexsort((rows, fix_col[rows], device_rank))
    rows, local = rows[order], local_of[order]
    keep = np.ones(len(rows), dtype=bool)
    keep[1:] = (local[1:] != local[:-1]) | (fix_col[rows[1:]] != fix_col[rows[:-1]])
    rows, local = rows[keep], local[keep]
    rank = np.empty(n, dtype=np.int64)
    rank[rows] = np.arange(len(rows))
    # The k-th fix of each device goes in round k.
    starts = np.ones(len(rows), dtype=bool)
    starts[1:] = local[1:] != local[:-1]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(rows)), 0))
    occurrence = np.arange(len(rows)) - group_start

    devices = {name: table.cols[name][slots] for name in table.cols}  # copies: fancy indexing
    counts = table.zone_count[slots].astype(np.int64)
    pairs = segments(table.zone_start[slots], counts)
    pair_state = {name: column[pairs] for name, column in table.pair.items()}
    pair_first = np.cumsum(counts) - counts
    changed = np.zeros(len(slots), dtype=bool)
    moved = np.zeros(len(slots), dtype=bool)
    touched = np.zeros(len(slots), dtype=bool)  # any zone state changed
    raised: list[tuple[int, int, Raised]] = []

    columns = _BatchColumns(cols)
    for k in range(int(occurrence.max()) + 1):
        in_round = occurrence == k
        _round(
            table, rows[in_round], local[in_round], columns, devices, pair_state, pair_first, counts, live,
            changed, moved, touched, raised, rank,
        )  # fmt: skip
    table.new_revs(devices["zone_rev"], touched)
    raised.sort(key=lambda r: (r[0], r[1]))
    return BatchResult(
        table,
        live,
        [r[2] for r in raised],
        slots,
        devices,
        counts,
        pairs,
        pair_state,
        slots[changed].astype(np.int32),
        slots[moved].astype(np.int32),
    )


def _round(table, rows, local, c, devices, pair_state, pair_first, counts, live, changed, moved, touched, raised, rank):
    """One fix per device: the rows' devices are distinct, so every update is one scatter."""
    valid = c.valid[rows]
    sos = c.sos[rows]
    # Alarms count even on a late or invalid fix; an invalid one is placed at the last known position.
    for i in np.flatnonzero(sos).tolist():
        r, lo = int(rows[i]), int(local[i])
        if valid[i]:
            lat, lon, district = none_if_nan(c.lat[r]), none_if_nan(c.lon[r]), int(c.district[r])
            data = {}
        else:
            lat, lon, district = (
                none_if_nan(devices["lat"][lo]),
                none_if_nan(devices["lon"][lo]),
                int(devices["district"][lo]),
            )
            data = {"fix_invalid": True}
        raised.append((rank[r], 0, _raised(table, "sos", r, c, from_ms(c.fix_time[r]), lat, lon, district, data)))
    last = devices["fix_time"][local]
    fresh = valid & ((last == NO_TIME) | (c.fix_time[rows] > last))
    rows, local = rows[fresh], local[fresh]
    if not len(rows):
        return
    live[rows] = True
    moved[local] = True
    for name in ("fix_time", "received_at", "lat", "lon", "speed", "accuracy", "district"):
        devices[name][local] = getattr(c, name)[rows]
    battery = c.battery[rows]
    said = ~np.isnan(battery)
    devices["battery"][local[said]] = battery[said]
    flags = devices["flags"][local]
    before = flags.copy()
    low = table.low_battery
    became_low = said & (battery <= low) & (flags & LOW_BATTERY == 0)
    flags[became_low] |= LOW_BATTERY
    flags[said & (battery >= low + BATTERY_RESET)] &= ~np.uint8(LOW_BATTERY)
    flags &= ~np.uint8(SILENT)
    outside = c.outside_city[rows]
    went_out = outside & (flags & OUTSIDE_CITY == 0)
    flags[went_out] |= OUTSIDE_CITY
    flags[~outside] &= ~np.uint8(OUTSIDE_CITY)
    devices["flags"][local] = flags
    changed[local[flags != before]] = True
    for i in np.flatnonzero(became_low | went_out).tolist():
        r = int(rows[i])
        at = from_ms(c.fix_time[r])
        lat, lon, district = float(c.lat[r]), float(c.lon[r]), int(c.district[r])
        if became_low[i]:
            data = {"battery": float(battery[i])}
            raised.append((rank[r], 1, _raised(table, "low_battery", r, c, at, lat, lon, district, data)))
        if went_out[i]:
            raised.append((rank[r], 2, _raised(table, "outside_city", r, c, at, lat, lon, district, {})))
    _zones(table, rows, local, c, pair_state, pair_first, counts, changed, touched, raised, rank)


def _zones(table, rows, local, c, pair_state, pair_first, counts, changed, touched, raised, rank):
    n_pairs = counts[local]
    p = segments(pair_first[local], n_pairs)
    if not len(p):
        return
    pair_row = np.repeat(rows, n_pairs)
    plane = table.plane
    x = np.repeat((c.lon[rows] - plane.lon0) * plane.kx, n_pairs)
    y = np.repeat((c.lat[rows] - plane.lat0) * plane.ky, n_pairs)
    zone = pair_state["zone"][p]
    verdict = table.zone_set.verdicts(zone, x, y, np.repeat(c.accuracy[rows], n_pairs))
    confirmed, candidate = pair_state["confirmed"][p], pair_state["candidate"][p]
    agreeing, since = pair_state["agreeing"][p], pair_state["since"][p]
    settled = (candidate == NONE) & (agreeing == 0) & (since == NO_TIME)
    acts = (verdict != NONE) & ~((verdict == confirmed) & settled)
    if not acts.any():
        return
    a = np.flatnonzero(acts)
    p, v, pair_row, zone = p[a], verdict[a], pair_row[a], zone[a]
    previous = confirmed[a]
    conf, cand, agr, sin, transition = step_zones(
        previous, candidate[a], agreeing[a], since[a], v, c.fix_time[pair_row], table.rules, NO_TIME
    )
    pair_state["confirmed"][p] = conf
    pair_state["candidate"][p] = cand
    pair_state["agreeing"][p] = agr
    pair_state["since"][p] = sin
    # Stored with the batch: a confirmed state into or out of a zone (its events are stored, and the absence check
    # reads "in" from the row). A device's first confirmation that it is out raises nothing and reads as "not in"
    # either way, and a candidate is rebuilt after a crash by replaying the positions newer than the state row.
    pair_local = np.repeat(local, counts[local])[a]
    touched[pair_local] = True
    changed[pair_local[transition & ((conf == IN) | (previous == IN))]] = True
    # Transitions that raise an event (zone_event's rule, as a mask): into a danger zone; between two
    # confirmed states of a safe zone.
    danger = table.zone_set.danger[zone]
    raising = transition & np.where(danger, v == IN, previous != NONE)
    for i in np.flatnonzero(raising).tolist():
        z = table.zone_set.zones[int(zone[i])]
        kind = zone_event(z.kind, (VERDICT_NAMES[int(previous[i])], VERDICT_NAMES[int(v[i])]))
        if kind is None:
            continue
        r = int(pair_row[i])
        order = 3 + int(p[i])  # zones in the device's order: its pairs are laid out in that order
        event = _raised(
            table, kind, r, c, from_ms(int(sin[i])), float(c.lat[r]), float(c.lon[r]), int(c.district[r]), {}, z
        )
        raised.append((rank[r], order, event))


def _raised(table, kind, r, c, at, lat, lon, district, data, zone=None) -> Raised:
    return Raised(
        kind,
        int(c.person_id[r]),
        int(c.device_id[r]),
        at,
        lat,
        lon,
        zone,
        data,
        table.districts[district] if district >= 0 else None,
        r,
    )


class _BatchColumns:
    """The columns a batch's rules read, as plain arrays (attribute access in the loops)."""

    def __init__(self, cols: Any):
        self.fix_time = np.asarray(cols["fix_time"], dtype=np.int64)
        self.received_at = np.asarray(cols["received_at"], dtype=np.int64)
        self.device_id = np.asarray(cols["device_id"], dtype=np.int64)
        self.person_id = np.asarray(cols["person_id"], dtype=np.int64)
        for name in ("lat", "lon", "speed", "accuracy", "battery"):
            setattr(self, name, np.asarray(cols[name], dtype=np.float64))
        self.valid = np.asarray(cols["valid"], dtype=bool)
        self.sos = np.asarray(cols["sos"], dtype=bool)
        self.outside_city = np.asarray(cols["outside_city"], dtype=bool)
        self.district = np.asarray(cols["district"], dtype=np.int32)
