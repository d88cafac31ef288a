"""How a data file is read: :class:`DataConfig`, and :func:`load_data`, which every command reads through.

The reader options are a config dataclass like the model options and the training settings,
so the command line's ``--columns``, ``--sep``, ``--min-rating``, ``--k-core``, ... are generated
from it (:mod:`igrsr.cli.options`) and a config file may set them.  :func:`load_data` records
in ``InteractionData.source`` the file and the options it was read with: a run keeps them
(``run.json``, under ``data.source``), so a later command can read the same file the same way
again and map the model's item numbers back to the file's own ids.

The reader options are not part of a run's key: what they change is the sequences, and the
data's fingerprint (in the key) covers those.  Two readings that give the same sequences train
the same model, so they share a run, which records the first reading's source; the id maps
come from the data a later command reads (checked against the fingerprint), not from the run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Literal, Mapping, Optional

from ..config import Config, ConfigError, option
from .interactions import InteractionData
from .readers import load_dataset
from .synthetic import make_synthetic

SYNTHETIC = "synthetic"  # the --data value (and the default) for the embedded synthetic data
NO_TIME_COLUMN = "none"


@dataclasses.dataclass(frozen=True)
class DataConfig(Config):
    """Options of :func:`igrsr.data.load_dataset` for one data file (defaults: read it as its
    name says, drop duplicate (user, item, timestamp) rows, filter nothing)."""

    format: Literal["auto", "txt", "inter", "csv", "tsv", "parquet"] = option(
        "auto", "data format (auto: from the file name, e.g. ratings.csv.gz is csv)"
    )
    columns: Optional[str] = option(
        None,
        "comma-separated names of the fields of a header-less delimited file, '-' for one to skip "
        "(MovieLens u.data: user,item,rating,timestamp)",
    )
    sep: Optional[str] = option(
        None, "field separator: a string, or tab, comma, semicolon, pipe, whitespace; unset: guessed from the file"
    )
    encoding: str = option("utf-8", "text encoding of the file")
    user_col: Optional[str] = option(None, "column of the user ids; unset: user (user_id in .inter files)")
    item_col: Optional[str] = option(None, "column of the item ids; unset: item (item_id in .inter files)")
    time_col: str = option(
        "timestamp", f"column each user's interactions are sorted by; '{NO_TIME_COLUMN}' keeps the file's order"
    )
    rating_col: str = option("rating", "column of the ratings (read for --min-rating)")
    min_rating: Optional[float] = option(None, "keep only interactions rated at least this")
    k_core: Optional[int] = option(
        None, "drop users and items with fewer interactions than this until none is left (iterative k-core)", ge=1
    )
    keep_duplicates: bool = option(False, "keep repeated (user, item, timestamp) rows instead of dropping them")

    def reader_options(self) -> Dict[str, Any]:
        """The keyword arguments of :func:`igrsr.data.load_dataset`."""
        columns = None if self.columns is None else tuple(self.columns.split(","))
        return dict(
            format=self.format,
            columns=columns,
            sep=self.sep,
            encoding=self.encoding,
            user_col=self.user_col,
            item_col=self.item_col,
            time_col=None if self.time_col == NO_TIME_COLUMN else self.time_col,
            rating_col=self.rating_col,
            min_rating=self.min_rating,
            drop_duplicates=not self.keep_duplicates,
            k_core=self.k_core,
        )

    def changed(self) -> Dict[str, Any]:
        """The options that differ from their defaults."""
        defaults = DataConfig()
        return {name: value for name, value in self.to_dict().items() if value != getattr(defaults, name)}


def is_synthetic(path: Optional[str]) -> bool:
    return path is None or str(path) == SYNTHETIC


def load_data(
    path: Optional[str], config: Optional[DataConfig] = None, synthetic: Mapping[str, Any] = {}
) -> InteractionData:
    """Read the data file ``path`` with the reader options of ``config``, or for ``None`` /
    ``"synthetic"`` build the embedded synthetic data (:func:`make_synthetic` with the options
    ``synthetic``), which takes no reader option.  The result's ``source`` says how to read it
    again."""
    config = config or DataConfig()
    if is_synthetic(path):
        changed = config.changed()
        if changed:
            name = next(iter(changed))
            raise ConfigError(name, "applies to a data file (--data), not to the embedded synthetic data")
        source = {"path": SYNTHETIC, "synthetic": dict(synthetic)}
        return dataclasses.replace(make_synthetic(**synthetic), source=source)
    data = load_dataset(path, **config.reader_options())
    return dataclasses.replace(data, source={"path": str(Path(path).resolve()), "reader": config.to_dict()})


def reload_data(source: Mapping[str, Any], path: Optional[str] = None) -> InteractionData:
    """The data a run recorded in ``source`` (its ``data.source``), read again with the reader
    options it was read with; ``path`` reads another copy of the file (moved, say) instead."""
    if not source:
        raise ValueError("the run records no data source (an older igrsr trained it); pass --data and reader options")
    path = source["path"] if path is None else path
    if is_synthetic(path):
        return load_data(None, synthetic=source.get("synthetic", {}) if is_synthetic(source["path"]) else {})
    reader = DataConfig.from_dict(source.get("reader", {}), source="the run's data.source")
    return load_data(path, reader)


__all__ = ["SYNTHETIC", "DataConfig", "is_synthetic", "load_data", "reload_data"]
