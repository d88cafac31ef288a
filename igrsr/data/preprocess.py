"""The usual preprocessing of an interaction log, and turning the log into user sequences.

Readers hand over a :class:`Log`: every interaction as a row of integer codes, already grouped
by user and in time order.  :func:`to_interactions` filters it, in this order, and records
what each step did in ``InteractionData.preprocessing``:

1. ``min_rating``: keep interactions rated at least this (needs a rating column);
2. drop duplicate (user, item, timestamp) rows, keeping the first (only with timestamps: without
   them a repeated item is a repeat visit, not a duplicate);
3. ``k_core``: drop users and items with fewer than ``k`` interactions, again and again until
   every user and every item left has at least ``k`` (the iterative N-core of S3-Rec and
   RecBole; a repeated item counts each time).  The result does not depend on the order of
   removal: it is the largest sub-log where every user and item has ``k`` interactions.

Items left are then numbered ``1..N`` in the sorted order of their original ids, and users
left keep their order.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any, Optional

import numpy as np

from .interactions import DataFormatError, InteractionData


@dataclass
class Log:
    """Row ``r`` is an interaction of user ``user_ids[user_codes[r]]`` with item
    ``item_ids[item_codes[r]]``; rows are grouped by user code, each user's in time order.
    ``times`` and ``ratings`` are per row, or ``None`` where the file has no such column."""

    user_ids: np.ndarray
    user_codes: np.ndarray
    item_ids: np.ndarray
    item_codes: np.ndarray
    times: Optional[np.ndarray] = None
    ratings: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.user_codes)


def check_options(path, min_rating, k_core) -> None:
    """Reject bad option values before the file is read."""
    if min_rating is not None and (
        isinstance(min_rating, bool) or not isinstance(min_rating, Real) or not np.isfinite(min_rating)
    ):
        raise DataFormatError(path, f"min_rating: expected a finite number or None, got {min_rating!r}")
    if k_core is not None and (isinstance(k_core, bool) or not isinstance(k_core, int) or k_core < 1):
        raise DataFormatError(path, f"k_core: expected a positive integer or None, got {k_core!r}")


def to_interactions(
    path,
    log: Log,
    name: str,
    min_rating: Optional[float] = None,
    drop_duplicates: bool = True,
    k_core: Optional[int] = None,
) -> InteractionData:
    """Filter ``log`` as the module docstring says, then build the user sequences."""
    check_options(path, min_rating, k_core)
    if len(log) == 0:
        raise DataFormatError(path, "no interactions found")
    keep = np.ones(len(log), dtype=bool)
    record: dict[str, Any] = {}
    if min_rating is not None or k_core is not None:
        record["interactions_read"] = len(log)
    if min_rating is not None:
        keep = _rated_at_least(path, log, min_rating, record)
    if log.times is not None and not drop_duplicates:
        record["drop_duplicates"] = False
    elif log.times is not None:
        keep = _without_duplicates(path, log, keep, record)
    if k_core is not None:
        keep = _k_core(path, log, keep, k_core, record)
    return _build(log, keep, name, record)


def _rated_at_least(path, log: Log, min_rating: float, record: dict) -> np.ndarray:
    if log.ratings is None:
        raise DataFormatError(path, "min_rating needs a rating column, and this file has none")
    keep = log.ratings >= min_rating
    if not keep.any():
        highest = f"the highest rating is {log.ratings.max():g}"
        raise DataFormatError(path, f"min_rating={min_rating:g} removed every interaction ({highest})")
    _report(path, record, "min_rating", min_rating, removed=len(log) - int(keep.sum()))
    return keep


def _without_duplicates(path, log: Log, keep: np.ndarray, record: dict) -> np.ndarray:
    duplicates = _duplicates(log, keep)
    record["duplicates_dropped"] = int(duplicates.sum())
    if record["duplicates_dropped"]:
        print(f"{path}: dropped {record['duplicates_dropped']} duplicate (user, item, timestamp) rows")
    return keep & ~duplicates


def _k_core(path, log: Log, keep: np.ndarray, k: int, record: dict) -> np.ndarray:
    """Remove rows of users or items with fewer than ``k`` rows until there are none."""
    rows, rounds = np.flatnonzero(keep), 0
    while len(rows):
        users, items = log.user_codes[rows], log.item_codes[rows]
        per_user = np.bincount(users, minlength=len(log.user_ids))
        per_item = np.bincount(items, minlength=len(log.item_ids))
        strong = (per_user[users] >= k) & (per_item[items] >= k)
        if strong.all():
            break
        rows, rounds = rows[strong], rounds + 1
    before = int(keep.sum())
    if not len(rows):
        each = f"no set of users and items has {k} interactions each"
        raise DataFormatError(path, f"k_core={k} removed all {before} interactions left ({each}); lower k_core")
    _report(path, record, "k_core", k, removed=before - len(rows))
    record["k_core_rounds"] = rounds
    kept = np.zeros(len(log), dtype=bool)
    kept[rows] = True
    return kept


def _report(path, record: dict, option: str, value, removed: int) -> None:
    record[option] = value
    record[f"removed_by_{option}"] = removed
    print(f"{path}: {option}={value:g} removed {removed} of {record['interactions_read']} interactions")


def _duplicates(log: Log, keep: np.ndarray) -> np.ndarray:
    """Kept rows equal in (user, item, time) to an earlier kept row.

    Rows are grouped by user in time order, so only runs of rows sharing a user and a time
    can hold duplicates; the items are compared within those runs.
    """
    rows = np.flatnonzero(keep)
    users, times = log.user_codes[rows], log.times[rows]
    tied = (users[1:] == users[:-1]) & (times[1:] == times[:-1])
    duplicates = np.zeros(len(log), dtype=bool)
    if not tied.any():
        return duplicates
    run = np.concatenate([[0], np.cumsum(~tied)])
    in_long_run = np.bincount(run)[run] > 1
    rows, run = rows[in_long_run], run[in_long_run]
    items = log.item_codes[rows]
    order = np.lexsort((items, run))  # stable: equal rows stay in row order
    repeated = (items[order][1:] == items[order][:-1]) & (run[order][1:] == run[order][:-1])
    duplicates[rows[order][1:][repeated]] = True
    return duplicates


def _build(log: Log, keep: np.ndarray, name: str, record: dict) -> InteractionData:
    rows = np.flatnonzero(keep) if not keep.all() else np.arange(len(log))
    kept_items, new_items = np.unique(log.item_codes[rows], return_inverse=True)
    lengths = np.bincount(log.user_codes[rows], minlength=len(log.user_ids))
    users_left = np.flatnonzero(lengths)
    sequences = np.split(new_items.astype(np.int64) + 1, np.cumsum(lengths[users_left])[:-1])
    item_ids = log.item_ids[kept_items]
    padding_placeholder = np.array(["" if item_ids.dtype.kind in "US" else 0], dtype=item_ids.dtype)
    return InteractionData(
        sequences=sequences,
        num_items=len(kept_items),
        user_ids=log.user_ids[users_left].tolist(),
        item_ids=np.concatenate([padding_placeholder, item_ids]),
        name=name,
        preprocessing=record,
    )
