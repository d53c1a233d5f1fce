"""Every device's live state in columns: the safety rules applied to a whole batch of positions at once.

    table = DeviceTable(plane, rules, low_battery=15, districts=[codes…])
    table.load(state_rows, zones)                # safety_device_state rows and every active zone
    cols["slot"] = table.slots_of(cols["device_id"], cols["person_id"])
    result = table.apply(cols)                   # pure: the table is not changed
    …write result.state_rows(result.changed) in the batch's transaction, commit…
    table.commit(result)                         # only once the transaction has committed

Each device has a dense slot. Its last fix (time, place, speed, accuracy, battery, district), its flags
(low battery, outside the city, silent: bits) and, for every zone it is checked against (its person's safe
zones, then the danger zones), the zone rule's state (`rules.ZoneState` as four arrays) live in numpy arrays.
A device's zones are one segment of the pair arrays (start, count), so a batch gathers the pairs of its
devices with one index and checks every fix against all its zones in one vectorised step
(`rules.ZoneSet.verdicts`); the zone rule then runs over the pairs as array operations (batch.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from smartcity.core.geo import LocalPlane
from smartcity.safety.batch import FLAG_NAMES, NO_TIME, BatchResult, apply_batch, none_if_nan, segments
from smartcity.safety.rules import NONE, VERDICT_CODES, VERDICT_NAMES, Rules, ZoneSet, ZoneShape, to_ms, zone_shape

FLAG_TEXT = [orjson.dumps({name: True for name, bit in FLAG_NAMES.items() if bits & bit}).decode() for bits in range(8)]

# The per-device columns: name → dtype and empty value.
_DEVICE_COLUMNS: dict[str, tuple[Any, Any]] = {
    "device_id": (np.int64, 0),
    "person_id": (np.int64, -1),
    "fix_time": (np.int64, NO_TIME),
    "received_at": (np.int64, NO_TIME),
    "lat": (np.float64, np.nan),
    "lon": (np.float64, np.nan),
    "speed": (np.float64, np.nan),
    "accuracy": (np.float64, np.nan),
    "battery": (np.float64, np.nan),
    "district": (np.int32, -1),
    "flags": (np.uint8, 0),
    "version": (np.int64, 0),  # of the device's state row (several writer processes on PostgreSQL)
    "zone_rev": (np.int64, 0),  # a new number whenever the device's zone states change (their JSON is cached)
}
_LIVE_COLUMNS = (
    "fix_time",
    "received_at",
    "lat",
    "lon",
    "speed",
    "accuracy",
    "battery",
    "district",
    "flags",
    "version",
    "zone_rev",
)
# The zone rule's state per (device, zone) pair.
_PAIR_COLUMNS: dict[str, tuple[Any, Any]] = {
    "zone": (np.int32, -1),  # index into the table's ZoneSet
    "zone_id": (np.int64, -1),  # the zone's id: what a state belongs to, whatever the index (zones reloaded)
    "confirmed": (np.int8, NONE),
    "candidate": (np.int8, NONE),
    "agreeing": (np.int16, 0),
    "since": (np.int64, NO_TIME),
}
_STATE_COLUMNS = ("confirmed", "candidate", "agreeing", "since")


def _ms_of(value: Any) -> int:
    if value is None:
        return NO_TIME
    if isinstance(value, datetime):
        return to_ms(value)
    if isinstance(value, str):
        return to_ms(datetime.fromisoformat(value))
    return int(value)


def zone_state_of(value: Mapping | None) -> tuple[int, int, int, int]:
    """A stored zone state (named keys; also the older {"s", "c", "n", "t"}) as the four array values."""
    if not value:
        return NONE, NONE, 0, NO_TIME
    if "confirmed" in value or "candidate" in value:
        confirmed, candidate, agreeing, since = (
            value.get("confirmed"),
            value.get("candidate"),
            value.get("agreeing"),
            value.get("since"),
        )
    else:
        confirmed, candidate, agreeing, since = value.get("s"), value.get("c"), value.get("n"), value.get("t")
    return VERDICT_CODES[confirmed], VERDICT_CODES[candidate], int(agreeing or 0), _ms_of(since)


class DeviceTable:
    """The live state of every device, in columns; the rules applied a batch at a time (see the module)."""

    def __init__(self, plane: LocalPlane, rules: Rules, low_battery: float = 15, districts: Sequence[str | None] = ()):
        self.plane, self.rules, self.low_battery = plane, rules, float(low_battery)
        self.districts = list(districts)
        self._district_index = {code: i for i, code in enumerate(self.districts)}
        self.slots: dict[int, int] = {}  # device id → slot
        self._lookup_ids = np.zeros(0, dtype=np.int64)  # device ids sorted, and their slots: slots_of's look-up
        self._lookup_slots = np.zeros(0, dtype=np.int32)
        self._lookup_n = 0
        self.n = 0
        self.cols = {name: np.full(0, empty, dtype=dt) for name, (dt, empty) in _DEVICE_COLUMNS.items()}
        self.zone_start = np.zeros(0, dtype=np.int64)
        self.zone_count = np.zeros(0, dtype=np.int32)
        self.pair = {name: np.full(0, empty, dtype=dt) for name, (dt, empty) in _PAIR_COLUMNS.items()}
        self.pairs_used = 0
        self.zone_set = ZoneSet([], rules)
        self.person_zones: dict[int, list[int]] = {}  # person → zone indices (safe zones, in order)
        self.danger: list[int] = []
        self.person_slots: dict[int, list[int]] = {}
        self._zone_text: dict[int, tuple[int, str]] = {}  # slot → (zone_rev, its zones as JSON)
        self._next_rev = 1
        self.layout = 0  # bumped when pairs move (zones changed): a result computed before is remapped
        self.generation = 0  # bumped by every commit: a result must be committed on the state it was made from

    # --- slots and zones --------------------------------------------------------------------------

    def slot_of(self, device_id: int, person_id: int | None = None) -> int:
        """The device's slot (a new one the first time); with `person_id`, the device's zones are set up."""
        slot = self.slots.get(device_id)
        if slot is None:
            slot = self._register(device_id, person_id)
            zones = self.person_zones.get(person_id, []) if person_id is not None else []
            self._lay_out(np.array([slot]), [zones + self.danger])
        elif person_id is not None and self.cols["person_id"][slot] != person_id:
            self._assign(slot, int(person_id))
            self._lay_out(np.array([slot]), [self.person_zones.get(person_id, []) + self.danger])
        return slot

    def slots_of(self, device_ids: np.ndarray, person_ids: np.ndarray | None = None) -> np.ndarray:
        """slot_of for a batch's columns: an int32 array."""
        if self._lookup_n != self.n:  # devices were added: the sorted look-up is made again
            ids = self.cols["device_id"][: self.n]
            order = np.argsort(ids, kind="stable")
            self._lookup_ids, self._lookup_slots, self._lookup_n = ids[order], order.astype(np.int32), self.n
        device_ids = np.asarray(device_ids, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._lookup_ids, device_ids), max(self.n - 1, 0))
        if self.n:
            out = np.where(self._lookup_ids[at] == device_ids, self._lookup_slots[at], -1).astype(np.int32)
        else:
            out = np.full(len(device_ids), -1, dtype=np.int32)
        known = out >= 0
        if person_ids is not None:
            known[known] = self.cols["person_id"][out[known]] == person_ids[known]
        missing = np.flatnonzero(~known)
        for i in missing.tolist():
            out[i] = self.slot_of(int(device_ids[i]), None if person_ids is None else int(person_ids[i]))
        return out

    def _register(self, device_id: int, person_id: int | None) -> int:
        """A new slot for the device, without zones laid out."""
        slot = self.n
        if slot >= len(self.cols["device_id"]):
            size = max(1024, 2 * slot)
            for name, (dt, empty) in _DEVICE_COLUMNS.items():
                grown = np.full(size, empty, dtype=dt)
                grown[:slot] = self.cols[name][:slot]
                self.cols[name] = grown
            self.zone_start = np.concatenate([self.zone_start, np.zeros(size - slot, dtype=np.int64)])
            self.zone_count = np.concatenate([self.zone_count, np.zeros(size - slot, dtype=np.int32)])
        self.n += 1
        self.slots[device_id] = slot
        self.cols["device_id"][slot] = device_id
        if person_id is not None:
            self._assign(slot, int(person_id))
        return slot

    def _assign(self, slot: int, person_id: int) -> None:
        old = int(self.cols["person_id"][slot])
        if old >= 0:
            self.person_slots.get(old, []).remove(slot)
        self.cols["person_id"][slot] = person_id
        self.person_slots.setdefault(person_id, []).append(slot)

    def _add_zones(self, shapes: Sequence[Any]) -> list[int]:
        shaped = [s if isinstance(s, ZoneShape) else zone_shape(s, self.plane) for s in shapes]
        if not shaped:
            return []
        first = len(self.zone_set)
        self.zone_set = self.zone_set.extended(shaped)
        return list(range(first, first + len(shaped)))

    def set_zones(self, person_id: int, shapes: Sequence[Any]) -> None:
        """The person's safe zones changed (ZoneShapes, or Zone rows): their devices' zone states are kept
        for the zones that remain, dropped for the others."""
        self.person_zones[person_id] = self._add_zones(shapes)
        slots = self.person_slots.get(person_id, [])
        if slots:
            zones = self.person_zones[person_id] + self.danger
            self._lay_out(np.array(slots), [zones] * len(slots))

    def set_danger_zones(self, shapes: Sequence[Any]) -> None:
        self.danger = self._add_zones(shapes)
        self._lay_out_all()

    def _lay_out_all(self) -> None:
        slots = np.arange(self.n)
        person = self.cols["person_id"][: self.n].tolist()
        self._lay_out(slots, [self.person_zones.get(p, []) + self.danger for p in person], compact=True)

    def _lay_out(self, slots: np.ndarray, zone_lists: list[list[int]], compact: bool = False) -> None:
        """Give `slots` new segments with these zones, keeping the state of each (slot, zone id) already
        there. Old segments are left behind (or, `compact`, everything is rewritten from the start)."""
        counts = np.fromiter((len(z) for z in zone_lists), dtype=np.int64, count=len(zone_lists))
        zones = np.fromiter((i for z in zone_lists for i in z), dtype=np.int32, count=int(counts.sum()))
        old_idx = segments(self.zone_start[slots], self.zone_count[slots])
        old_slot = np.repeat(slots, self.zone_count[slots])
        ids = self.zone_set.ids
        old_key = old_slot.astype(np.int64) << 32 | self.pair["zone_id"][old_idx]
        base = 0 if compact else self.pairs_used
        total = base + len(zones)
        if compact:
            fresh = {name: np.full(max(total, 1024), empty, dtype=dt) for name, (dt, empty) in _PAIR_COLUMNS.items()}
            old_values = {name: self.pair[name][old_idx] for name in _STATE_COLUMNS}
            self.pair = fresh
        else:
            old_values = {name: self.pair[name][old_idx] for name in _STATE_COLUMNS}
            if total > len(self.pair["zone"]):
                size = max(1024, 2 * total)
                for name, (dt, empty) in _PAIR_COLUMNS.items():
                    grown = np.full(size, empty, dtype=dt)
                    grown[: self.pairs_used] = self.pair[name][: self.pairs_used]
                    self.pair[name] = grown
        where = np.arange(base, total)
        self.pair["zone"][where] = zones
        self.pair["zone_id"][where] = ids[zones]
        for name in _STATE_COLUMNS:
            self.pair[name][where] = _PAIR_COLUMNS[name][1]
        if len(old_idx) and len(zones):
            new_key = np.repeat(slots, counts).astype(np.int64) << 32 | ids[zones]
            order = np.argsort(old_key)
            found = np.searchsorted(old_key[order], new_key)
            found = np.minimum(found, len(order) - 1)
            hit = old_key[order][found] == new_key
            for name in _STATE_COLUMNS:
                self.pair[name][where[hit]] = old_values[name][order[found[hit]]]
        self.zone_start[slots] = base + np.cumsum(counts) - counts
        self.zone_count[slots] = counts
        self.pairs_used = total
        if compact or len(old_idx):  # pairs moved (a new device's first segment moves nothing)
            self.layout += 1
        self.new_revs(self.cols["zone_rev"], slots)
        if not compact and total > 4 * max(int(self.zone_count[: self.n].sum()), 4096):
            self._lay_out_all()  # mostly left-behind segments: write the live ones again from the start

    def new_revs(self, revs: np.ndarray, where: np.ndarray) -> None:
        """Fresh zone revisions (never given out before, so a cached JSON text is never mistaken)."""
        n = len(where) if where.dtype != np.bool_ else int(where.sum())
        revs[where] = np.arange(self._next_rev, self._next_rev + n)
        self._next_rev += n

    # --- loading and persisting ---------------------------------------------------------------------

    def load(self, state_rows: Iterable[Any], zones: Iterable[Any] | None = None) -> None:
        """Zones (ZoneShapes or Zone rows: safe ones per person, danger ones for everyone; None: keep the
        current ones) and stored device states (safety_device_state rows, or dicts of their columns; times
        as datetimes or ms; zone states with named keys or the older {"s", "c", "n", "t"}). The state of
        each device in `state_rows` is replaced; other devices keep theirs."""
        if zones is not None:
            self._load_zones(zones)
        rows = list(state_rows)
        if rows and isinstance(rows[0], Mapping):

            def values(name: str) -> list:
                return [row.get(name) for row in rows]
        else:

            def values(name: str) -> list:
                return [getattr(row, name, None) for row in rows]

        slot_list = []
        for device_id, person_id in zip(values("device_id"), values("person_id"), strict=True):
            slot = self.slots.get(device_id)
            if slot is None:
                slot = self._register(int(device_id), int(person_id))
            elif self.cols["person_id"][slot] != person_id:
                self._assign(slot, int(person_id))
            slot_list.append(slot)
        slots = np.array(slot_list, dtype=np.int64)
        c = self.cols
        c["version"][slots] = [v or 0 for v in values("version")]
        for name in ("fix_time", "received_at"):
            c[name][slots] = [NO_TIME if v is None else _ms_of(v) for v in values(name)]
        for name in ("lat", "lon", "speed", "accuracy", "battery"):
            c[name][slots] = [np.nan if v is None else v for v in values(name)]
        index = self._district_index
        c["district"][slots] = [index.get(v, -1) for v in values("district_code")]
        c["flags"][slots] = [
            sum(bit for name, bit in FLAG_NAMES.items() if flags.get(name)) if flags else 0 for flags in values("flags")
        ]
        stored_zones = {slot: states for slot, states in zip(slot_list, values("zones"), strict=True) if states}
        if zones is not None:
            self._lay_out_all()
        elif len(slots):
            person = self.cols["person_id"][slots].tolist()
            self._lay_out(slots, [self.person_zones.get(p, []) + self.danger for p in person])
        # The rows' devices get exactly the zone states of their rows (none where a row has none).
        reset = segments(self.zone_start[slots], self.zone_count[slots])
        for name in _STATE_COLUMNS:
            self.pair[name][reset] = _PAIR_COLUMNS[name][1]
        where, found = [], []
        for slot, states in stored_zones.items():
            start = int(self.zone_start[slot])
            zone_ids = self.pair["zone_id"][start : start + int(self.zone_count[slot])].tolist()
            for p, zone_id in enumerate(zone_ids, start):
                value = states.get(str(zone_id))
                if value:
                    where.append(p)
                    found.append(zone_state_of(value))
        if where:
            for name, column in zip(_STATE_COLUMNS, zip(*found, strict=True), strict=True):
                self.pair[name][where] = column
        self.new_revs(self.cols["zone_rev"], slots)
        self.generation += 1

    def load_states(self, state_rows: Iterable[Any]) -> None:
        """Replace the state of just these devices (rows another process has moved)."""
        self.load(state_rows, None)

    def _load_zones(self, zones: Iterable[Any]) -> None:
        person: dict[int, list[Any]] = {}
        danger = []
        for z in zones:
            if z.kind == "danger":
                danger.append(z)
            elif z.person_id is not None:
                person.setdefault(z.person_id, []).append(z)
        all_zones = [s if isinstance(s, ZoneShape) else zone_shape(s, self.plane) for s in danger]
        for items in person.values():
            all_zones += [s if isinstance(s, ZoneShape) else zone_shape(s, self.plane) for s in items]
        self.zone_set = ZoneSet([], self.rules)
        indices = self._add_zones(all_zones)
        self.danger = indices[: len(danger)]
        at = len(danger)
        self.person_zones = {}
        for person_id, items in person.items():
            self.person_zones[person_id] = indices[at : at + len(items)]
            at += len(items)

    def last_fix(self, slots: np.ndarray) -> np.ndarray:
        """The devices' latest fix times (ms; -1 for none): a fix newer than it cannot be a duplicate."""
        times = self.cols["fix_time"][np.asarray(slots, dtype=np.int64)]
        return np.where(times == NO_TIME, -1, times)

    def version_of(self, slots: np.ndarray) -> np.ndarray:
        """The devices' state row versions as this table last wrote or read them."""
        return self.cols["version"][np.asarray(slots, dtype=np.int64)].copy()

    def row_of(self, device: Mapping[str, Any], pair_state: Mapping[str, np.ndarray], pairs: Iterable[int]):
        """One safety_device_state row's values (times in ms; zones and flags as dicts with named keys)."""
        zones = {}
        ids = pair_state["zone_id"]
        for p in pairs:
            confirmed, candidate = int(pair_state["confirmed"][p]), int(pair_state["candidate"][p])
            agreeing, since = int(pair_state["agreeing"][p]), int(pair_state["since"][p])
            if confirmed == NONE and candidate == NONE and agreeing == 0 and since == NO_TIME:
                continue
            zones[str(int(ids[p]))] = {
                "confirmed": VERDICT_NAMES[confirmed],
                "candidate": VERDICT_NAMES[candidate],
                "agreeing": agreeing,
                "since": None if since == NO_TIME else since,
            }
        flags = int(device["flags"])
        district = int(device["district"])
        return {
            "device_id": int(device["device_id"]),
            "person_id": int(device["person_id"]),
            "fix_time": None if device["fix_time"] == NO_TIME else int(device["fix_time"]),
            "received_at": None if device["received_at"] == NO_TIME else int(device["received_at"]),
            "lat": none_if_nan(device["lat"]),
            "lon": none_if_nan(device["lon"]),
            "speed": none_if_nan(device["speed"]),
            "accuracy": none_if_nan(device["accuracy"]),
            "battery": none_if_nan(device["battery"]),
            "district_code": self.districts[district] if district >= 0 else None,
            "zones": zones,
            "flags": {name: True for name, bit in FLAG_NAMES.items() if flags & bit},
            "version": int(device["version"]),
        }

    def state_columns(self, slots: Iterable[int] | np.ndarray) -> dict[str, list]:
        """state_rows as columns ready for executemany (zones and flags as JSON text), as the table holds
        them: a checkpoint's rows."""
        slots = np.asarray(slots, dtype=np.int64)
        return self.columns_of(self.cols, slots, slots, self.pair, self.zone_start[slots], self.zone_count[slots])

    def columns_of(
        self, devices, rows: np.ndarray, slots: np.ndarray, pair_state, starts: np.ndarray, counts: np.ndarray
    ) -> dict:
        """Columns of safety_device_state values for `rows` of `devices` (columns like the table's), whose zone
        states are `counts` pairs of `pair_state` from `starts`. A device's zones JSON is made once per change of
        its zone states (`zone_rev`) and kept."""
        out: dict[str, list] = {}
        for name in ("device_id", "person_id", "version"):
            out[name] = devices[name][rows].tolist()
        for name in ("fix_time", "received_at"):
            out[name] = [None if v == NO_TIME else v for v in devices[name][rows].tolist()]
        for name in ("lat", "lon", "speed", "accuracy", "battery"):
            out[name] = [None if v != v else v for v in devices[name][rows].tolist()]
        codes = [*self.districts, None]
        district = devices["district"][rows]
        out["district_code"] = [codes[i] for i in np.where(district < 0, len(self.districts), district).tolist()]
        out["flags"] = [FLAG_TEXT[f] for f in devices["flags"][rows].tolist()]
        revs = devices["zone_rev"][rows].tolist()
        slots = np.asarray(slots).tolist()
        cache = self._zone_text
        texts: list[str | None] = [None] * len(revs)
        missing = []
        for i, (slot, rev) in enumerate(zip(slots, revs, strict=True)):
            hit = cache.get(slot)
            if hit is not None and hit[0] == rev:
                texts[i] = hit[1]
            else:
                missing.append(i)
        if missing:
            miss = np.array(missing, dtype=np.int64)
            pairs = segments(starts[miss], counts[miss])
            ids = pair_state["zone_id"][pairs].tolist()
            conf = pair_state["confirmed"][pairs].tolist()
            cand = pair_state["candidate"][pairs].tolist()
            agr = pair_state["agreeing"][pairs].tolist()
            since = pair_state["since"][pairs].tolist()
            at = 0
            for i, n in zip(missing, counts[miss].tolist(), strict=True):
                zones = {}
                for j in range(at, at + n):
                    if conf[j] or cand[j] or agr[j] or since[j] != NO_TIME:
                        zones[str(ids[j])] = {
                            "confirmed": VERDICT_NAMES[conf[j]],
                            "candidate": VERDICT_NAMES[cand[j]],
                            "agreeing": agr[j],
                            "since": None if since[j] == NO_TIME else since[j],
                        }
                at += n
                texts[i] = orjson.dumps(zones).decode()
                cache[slots[i]] = (revs[i], texts[i])
        out["zones"] = texts
        return out

    def state_rows(self, slots: Iterable[int] | np.ndarray) -> list[dict]:
        """The safety_device_state values of these slots as the table holds them (for checkpoints)."""
        out = []
        for slot in np.asarray(slots, dtype=np.int64).tolist():
            start, count = int(self.zone_start[slot]), int(self.zone_count[slot])
            device = {name: values[slot] for name, values in self.cols.items()}
            out.append(self.row_of(device, self.pair, range(start, start + count)))
        return out

    def set_flag(self, slot: int, name: str, on: bool = True) -> None:
        """A flag set from outside the intake (the silent-device job): cleared again by the next live fix."""
        bit = FLAG_NAMES[name]
        flags = self.cols["flags"]
        flags[slot] = (flags[slot] | bit) if on else (flags[slot] & ~bit)

    # --- a batch ------------------------------------------------------------------------------------

    def apply(self, cols: Any) -> BatchResult:
        """Run a batch (core.intake.Columns of positions, with `slot` set) through the rules. The table is not
        changed: `commit` the result once the batch's transaction has committed."""
        return apply_batch(self, cols)

    def commit(self, result: BatchResult) -> None:
        """Apply a batch's result, once its transaction has committed."""
        if result.table is not self:
            raise ValueError("a result of another table")
        if result.generation != self.generation:
            raise RuntimeError("the table changed since this result was computed: apply the batch again")
        if not len(result.slots):
            return
        for name, values in result.devices.items():
            if name in _LIVE_COLUMNS:
                self.cols[name][result.slots] = values
        if result.layout == self.layout:
            for name in _STATE_COLUMNS:
                self.pair[name][result.pairs] = result.pair_state[name]
        else:  # zones changed in between: each state goes to the same (slot, zone id) if it is still there
            firsts = (np.cumsum(result.counts) - result.counts).tolist()
            for i, slot in enumerate(result.slots.tolist()):
                start, count = int(self.zone_start[slot]), int(self.zone_count[slot])
                where = {int(self.pair["zone_id"][q]): q for q in range(start, start + count)}
                for j in range(firsts[i], firsts[i] + int(result.counts[i])):
                    q = where.get(int(result.pair_state["zone_id"][j]))
                    if q is not None:
                        for name in _STATE_COLUMNS:
                            self.pair[name][q] = result.pair_state[name][j]
            self.new_revs(self.cols["zone_rev"], result.slots)
        self.generation += 1

    def recover(self, positions: Any) -> BatchResult:
        """After a crash: replay the stored positions newer than each device's state row (Columns, any
        order; the table loaded from the state rows). Their events are returned again; the caller passes
        them through the event dedupe, so nothing already announced is announced twice."""
        cols = positions
        if "stored" in cols:
            cols = type(cols)({**cols.cols, "stored": np.ones(cols.n, dtype=bool)}, cols.n)
        result = self.apply(cols)
        self.commit(result)
        return result

    # --- reading ------------------------------------------------------------------------------------

    def zone_states(self, slot: int) -> dict[str, tuple]:
        """A device's zone states by zone id: (confirmed, candidate, agreeing, since ms | None)."""
        return {
            key: (z["confirmed"], z["candidate"], z["agreeing"], z["since"])
            for key, z in self.state_rows([slot])[0]["zones"].items()
        }
