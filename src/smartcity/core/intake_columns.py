"""The intake's batch as arrays: `Columns` (one numpy array per field, not one object per record), the
position schema every located feed shares, a columnar batch's row-by-row `BatchOutcome`, and `Overloaded`.
Part of the intake pipeline (core/intake.py, which re-exports it all)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from smartcity.core.errors import SmartCityError

# The columns of a batch of device positions (any feed of located fixes: trackers, and later sensors). Times
# are int64 epoch milliseconds UTC; a float NaN is an absent value; object columns hold str or None.
POSITION_SCHEMA: dict[str, Any] = {
    "slot": np.int32,
    "device_id": np.int64,
    "person_id": np.int64,
    "fix_time": np.int64,
    "received_at": np.int64,
    "lat": np.float64,
    "lon": np.float64,
    "speed": np.float64,
    "bearing": np.float64,
    "altitude": np.float64,
    "accuracy": np.float64,
    "battery": np.float64,
    "valid": np.bool_,
    "sos": np.bool_,
    "alarm": object,
    "protocol": object,
    "attributes": object,
    "outside_city": np.bool_,
    "district": np.int32,
    "stored": np.bool_,
}


class Overloaded(SmartCityError):
    status = 503
    code = "overloaded"


class Columns:
    """A batch of records as one array per field, all of length `n`."""

    __slots__ = ("cols", "n")

    def __init__(self, cols: dict[str, np.ndarray], n: int | None = None):
        if n is None:
            n = len(next(iter(cols.values()))) if cols else 0
        for name, arr in cols.items():
            if len(arr) != n:
                raise ValueError(f"column {name!r} has {len(arr)} values, not {n}")
        self.cols, self.n = cols, n

    @classmethod
    def empty(cls, schema: dict[str, Any], n: int) -> Columns:
        """Columns of `schema` for n records: NaN floats, False flags, -1 integers, None objects."""
        cols = {}
        for name, dtype in schema.items():
            if dtype is object:
                cols[name] = np.full(n, None, dtype=object)
            elif np.issubdtype(dtype, np.floating):
                cols[name] = np.full(n, np.nan, dtype=dtype)
            elif dtype is np.bool_:
                cols[name] = np.zeros(n, dtype=np.bool_)
            else:
                cols[name] = np.full(n, -1, dtype=dtype)
        return cls(cols, n)

    @classmethod
    def concat(cls, parts: Sequence[Columns]) -> Columns:
        """One batch of several, in order (fields missing from a part are not kept)."""
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls({}, 0)
        names = [k for k in parts[0].cols if all(k in p.cols for p in parts)]
        return cls({k: np.concatenate([p.cols[k] for p in parts]) for k in names}, sum(p.n for p in parts))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def __setitem__(self, name: str, values: np.ndarray) -> None:
        if len(values) != self.n:
            raise ValueError(f"column {name!r} has {len(values)} values, not {self.n}")
        self.cols[name] = values

    def __contains__(self, name: str) -> bool:
        return name in self.cols

    def take(self, index: np.ndarray | Sequence[int]) -> Columns:
        """The records selected by a boolean mask or by their positions, in that order."""
        index = np.asarray(index)
        n = int(index.sum()) if index.dtype == np.bool_ else len(index)
        return Columns({k: v[index] for k, v in self.cols.items()}, n)

    def rows(self, names: Sequence[str]) -> list[tuple]:
        """The records as tuples of plain Python values (NaN → None), for a driver's executemany or COPY."""
        lists = []
        for name in names:
            arr = self.cols[name]
            values = arr.tolist()
            if arr.dtype.kind == "f":
                nan = np.isnan(arr)
                if nan.any():
                    for i in np.flatnonzero(nan).tolist():
                        values[i] = None
            lists.append(values)
        return list(zip(*lists, strict=True))


REFUSED, STORED, DUPLICATE = 0, 1, 2  # a row's outcome in a BatchOutcome


class BatchOutcome:
    """The outcome of a columnar batch, row by row: `status` (REFUSED, STORED or DUPLICATE) and the refused
    rows' errors by row. One object for the batch instead of one acknowledgment per record."""

    __slots__ = ("status", "errors")

    def __init__(self, status: np.ndarray, errors: dict[int, BaseException] | None = None):
        self.status = status
        self.errors = {} if errors is None else errors

    @classmethod
    def refused(cls, n: int, error: BaseException) -> BatchOutcome:
        return cls(np.zeros(n, dtype=np.int8), dict.fromkeys(range(n), error))

    def merge(self, rows: np.ndarray, part: BatchOutcome) -> None:
        """Put the outcome of the batch made of `rows` of this one in place."""
        self.status[rows] = part.status
        for i, exc in part.errors.items():
            self.errors[int(rows[i])] = exc

    @property
    def stored(self) -> int:
        return int((self.status == STORED).sum())

    @property
    def duplicates(self) -> int:
        return int((self.status == DUPLICATE).sum())

    def __reduce__(self):
        return BatchOutcome, (self.status, self.errors)
