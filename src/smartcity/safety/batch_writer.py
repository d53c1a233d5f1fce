"""The safety engine's batch transaction (a part of `engine.SafetyEngine`, as `admission.Admission` is): a batch
of queued positions as `Columns`, each fix's district, the batch store, the device table's rules, the state
rows of the devices whose zones or flags changed (and a due checkpoint round riding with it), events, live
events, one commit; then the table's memory and each record's acknowledgment."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from smartcity.core.geo import geo_index
from smartcity.core.intake import DUPLICATE, POSITION_SCHEMA, STORED, BatchOutcome, Columns, Pending
from smartcity.safety.models import DeviceState
from smartcity.safety.positions import POSITION_COLUMNS, ROW, Ack, LiveView, _plain
from smartcity.safety.rules import from_ms, to_ms

STATE_SET = ("version", "fix_time", "received_at", "lat", "lon", "speed", "accuracy", "battery", "district_code")
STATE_SET += ("zones", "flags")
INLINE_STATES = 64  # an idle writer writes up to this many moved devices' state rows with their batch


class BatchWriter:
    """The writer's side of `SafetyEngine`: one batch, one transaction (see the module)."""

    def _columns_of(self, batch: list[Pending]) -> tuple[Columns, list[tuple[Pending, int, int]]]:
        """The batch as one Columns, in queue order, and each pending's rows in it (start, count)."""
        parts: list[Columns] = []
        spans = []
        at = 0
        singles: list[Pending] = []

        def flush() -> None:
            nonlocal at
            if singles:
                parts.append(_rows_to_columns([p.record for p in singles]))
                for p in singles:
                    spans.append((p, at, 1))
                    at += 1
                singles.clear()

        for item in batch:
            if isinstance(item.record, Columns):
                flush()
                parts.append(item.record)
                spans.append((item, at, item.record.n))
                at += item.record.n
            else:
                singles.append(item)
        flush()
        return Columns.concat(parts), spans

    def _place(self, cols: Columns) -> None:
        """Each fix's district (index in the geo index's list, -1 none) and whether it is outside the city
        (a fix that is not a position is neither)."""
        district = geo_index(self.db).district_indexes(cols["lat"], cols["lon"])
        valid = cols["valid"]
        cols["district"] = np.where(valid, district, -1).astype(np.int32)
        cols["outside_city"] = valid & (district < 0)

    def _write_batch(self, batch: list[Pending]) -> list[tuple[Pending, Any]]:
        from smartcity.safety import service

        cols, spans = self._columns_of(batch)
        self._place(cols)
        cols["sos"] = cols["alarm"] == "sos"
        opened: list = []
        with self._store_turn, self.db.session() as s, self._lock:
            conn = s.connection()
            self.store.prepare(conn)
            table = self.table
            cols["slot"] = table.slots_of(cols["device_id"], cols["person_id"])
            if self.db.is_postgres:
                self._refresh_stale(s, cols)
            # A fix newer than its device's latest cannot be a replay (unless repeated in the batch): a batch of
            # such fixes is written without asking the store which keys it already has.
            last = table.last_fix(cols["slot"])
            # Per row: only those not newer than their device's latest are looked up. A fix repeated within
            # the batch is caught by the staging table's key, or by a checked insert without staging.
            maybe_present: np.ndarray | bool = cols["fix_time"] <= last
            if self.mover is None and _repeats(cols):
                maybe_present = True
            cols["stored"] = self.store.insert_new(
                conn,
                "safety_positions",
                {name: cols[name] for name in POSITION_COLUMNS},
                ("device_id", "fix_time"),
                maybe_present=maybe_present,
            )
            result = table.apply(cols)
            written = result.changed
            if len(result.moved) <= INLINE_STATES and not self.queue.queued:
                # An idle writer with a small batch writes the moved devices' state with it: readers of the
                # state rows (the guardian's view) see a position as soon as it is acknowledged. Under load
                # they are checkpointed.
                written = np.union1d(result.changed, result.moved)
            # A due checkpoint round rides with an ordinary batch: its devices' state rows are written by the
            # batch's statement (the batch's own newer values for those in it), the others' as the table holds
            # them, in the batch's transaction — no commit of its own. (PostgreSQL keeps its rounds apart: a
            # batch there locks its own devices' rows first, in order, and takes no others.)
            riding = not self.db.is_postgres and not cols["sos"].any()
            due = self.checkpoints.take_due() if riding else None
            try:
                if due is not None:
                    in_batch = np.isin(due, result.slots)
                    written = np.union1d(written, np.intersect1d(due[in_batch], result.moved))
                    others = due[~in_batch]
                    if len(others):
                        self._write_states(s, table.state_columns(others))
                if len(written):
                    self._write_states(s, result.state_columns(written))
                cooldown = self.safety_settings.alert_cooldown_minutes
                for ev in result.events:
                    service.raise_event(s, ev, dedupe=ev.dedupe_key(), cooldown_minutes=cooldown)
                opened = s.info.pop("safety.opened_incidents", [])
                if self.safety_settings.live_positions and len(result.moved):
                    self._publish_live(s, result)
                s.commit()
                if self.mover is not None:
                    # Told after the commit, never before: a look of the mover's between the two would read the
                    # table without these rows and forget them (the backlog under-counted until its next look,
                    # so a position over SAFETY_STAGING_MAX_BEHIND got through: CI, session 24).
                    self.mover.staged_more(int(cols["stored"].sum()))
            except BaseException:
                if due is not None:  # not written: they stay due
                    self.checkpoints.mark(due.tolist())
                raise
            table.commit(result)
        if due is not None:  # due devices in the batch that it did not move: the next round writes them
            self.checkpoints.mark(np.setdiff1d(due[in_batch], written).tolist())
        self.checkpoints.forget(written.tolist())
        self.checkpoints.mark(np.setdiff1d(result.moved, written).tolist())
        with self._lock:
            for inc in opened:
                self.open_incidents[inc["person_id"]][inc["kind"]] = inc["id"]
                self.incident_district[inc["id"]] = inc["district"]
        return self._outcomes(cols, spans, result)

    def _outcomes(self, cols: Columns, spans: list, result) -> list[tuple[Pending, Any]]:
        status = np.where(cols["stored"], STORED, DUPLICATE).astype(np.int8)
        kinds: dict[int, list[str]] = {}
        for ev in result.events:
            kinds.setdefault(ev.row, []).append(ev.kind)
        out = []
        for item, start, n in spans:
            if isinstance(item.record, Columns):
                out.append((item, BatchOutcome(status[start : start + n])))
                continue
            stored = status[start] == STORED
            out.append(
                (
                    item,
                    Ack(
                        int(cols["device_id"][start]),
                        from_ms(int(cols["fix_time"][start])),
                        duplicate=not stored,
                        live=bool(result.live[start]),
                        events=tuple(kinds.get(start, ())),
                    ),
                )
            )
        return out

    def _write_states(self, s, cols: dict[str, list]) -> None:
        """UPDATE device state rows from columns (DeviceTable.state_columns: zones and flags as JSON text) with one
        executemany; a device without a row (registered before states were kept) gets one first."""
        ids = cols["device_id"]
        if not ids:
            return
        missing = [i for i, d in enumerate(ids) if d not in self._state_rows]
        if missing:
            have = set(
                s.scalars(select(DeviceState.device_id).where(DeviceState.device_id.in_([ids[i] for i in missing])))
            )
            for i in missing:
                if ids[i] not in have:
                    s.add(DeviceState(device_id=ids[i], person_id=cols["person_id"][i]))
            s.flush()
            self._state_rows.update(ids[i] for i in missing)
        mark = "%s" if self.db.is_postgres else "?"
        sql = f"UPDATE safety_device_state SET {', '.join(f'{c} = {mark}' for c in STATE_SET)} WHERE device_id = {mark}"
        s.connection().exec_driver_sql(sql, list(zip(*(cols[c] for c in STATE_SET), ids, strict=True)))

    def _refresh_stale(self, s, cols: Columns) -> None:
        """PostgreSQL: lock the batch's state rows (in device order) and re-read those another process wrote
        since this engine last did."""
        ids, first = np.unique(cols["device_id"], return_index=True)
        mine = dict(zip(ids.tolist(), self.table.version_of(cols["slot"][first]).tolist(), strict=True))
        found = s.connection().exec_driver_sql(
            "SELECT device_id, version FROM safety_device_state WHERE device_id = ANY(%s) ORDER BY device_id "
            "FOR UPDATE",
            (ids.tolist(),),
        )
        stale = [d for d, v in found if mine[d] != v]
        if stale:
            rows = s.scalars(select(DeviceState).where(DeviceState.device_id.in_(stale)))
            self.table.load_states([_state_row(r) for r in rows])

    def _checkpoint(self, slots: np.ndarray) -> None:
        """Write the live state of devices that moved without a zone or flag change (SAFETY_STATE_CHECKPOINT_S)."""
        with self._lock:
            cols = self.table.state_columns(slots)
        with self._store_turn, self.db.session() as s:
            self._write_states(s, cols)

    def _publish_live(self, s, result) -> None:
        """Each moved device's newest position as a live event, unless nobody listening could see it."""
        from smartcity.safety import service

        watch = self.live_watch
        if watch is not None and watch[0]:
            watch = None
        if watch is not None and not watch[1] and not (watch[2] and self.incident_district):
            return  # nobody listens here
        local = np.searchsorted(result.slots, result.moved)
        dev = result.devices
        for i in local.tolist():
            device = self.by_id.get(int(dev["device_id"][i]))
            person_id = int(dev["person_id"][i])
            districts = [self.incident_district.get(k) for k in self.open_incidents.get(person_id, {}).values()]
            if watch is not None and not (
                (device and not watch[1].isdisjoint(device.guardians)) or (watch[2] and districts)
            ):
                continue  # nobody listening could see it
            values = [_plain(dev[k][i]) for k in ("lat", "lon", "speed", "accuracy", "battery")]
            live = LiveView(
                int(dev["device_id"][i]), person_id, from_ms(int(dev["fix_time"][i])), None, *values, None, {}, {}
            )
            service.publish_live(s, live, device, districts)


def _state_row(row: DeviceState) -> dict:
    """A safety_device_state row as DeviceTable.load takes it (times in ms)."""
    return {
        "device_id": row.device_id,
        "person_id": row.person_id,
        "version": row.version,
        "fix_time": None if row.fix_time is None else to_ms(row.fix_time),
        "received_at": None if row.received_at is None else to_ms(row.received_at),
        "lat": row.lat,
        "lon": row.lon,
        "speed": row.speed,
        "accuracy": row.accuracy,
        "battery": row.battery,
        "district_code": row.district_code,
        "zones": row.zones or {},
        "flags": row.flags or {},
    }


def _rows_to_columns(rows: list[tuple]) -> Columns:
    """Queued single positions (ROW tuples) as columns."""
    values = list(zip(*rows, strict=True))
    cols = {}
    for name, column in zip(ROW, values, strict=True):
        dtype = POSITION_SCHEMA[name]
        cols[name] = np.array(column, dtype=dtype) if dtype is not object else _objects(column)
    return Columns(cols, len(rows))


def _objects(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _repeats(cols: Columns) -> bool:
    """Whether some device sends the same fix time twice in the batch."""
    key = cols["device_id"].astype(np.int64) * 1_000_003 + cols["fix_time"]
    return len(np.unique(key)) < cols.n
