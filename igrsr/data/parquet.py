"""Parquet input through the optional ``pyarrow`` package (``pip install pyarrow``)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .interactions import DataFormatError
from .sources import check_file, format_and_compression, read_bytes
from .tables import Table


def read_parquet_table(path, wanted: list[str]) -> "ParquetTable":
    """The ``wanted`` columns of a Parquet file (those it has; a missing one fails when asked
    for, naming the columns there are)."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise DataFormatError(path, "reading .parquet files needs pyarrow: pip install pyarrow") from None
    check_file(path)
    compressed = format_and_compression(path)[1] is not None
    source = pyarrow.BufferReader(read_bytes(path)) if compressed else str(path)
    try:
        file = pyarrow.parquet.ParquetFile(source)
        names = file.schema_arrow.names
        columns = file.read(columns=[name for name in dict.fromkeys(wanted) if name in names])
    except (pyarrow.ArrowException, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataFormatError(path, f"cannot read it as Parquet ({reason})") from None
    if columns.num_rows == 0:
        raise DataFormatError(path, "no interactions found: the file has no rows")
    return ParquetTable(path, names, columns)


class ParquetTable(Table):
    """Columns of a pyarrow table; errors name the 1-based row."""

    def __init__(self, path, names: list[str], columns):
        super().__init__(path, names)
        self.columns = columns

    def error(self, message: str, row: Optional[int] = None) -> DataFormatError:
        return DataFormatError(self.path, message if row is None else f"row {row + 1}: {message}")

    def raw_column(self, index: int) -> np.ndarray:
        import pyarrow
        import pyarrow.compute

        name = self.names[index]
        column = self.columns.column(name)
        if column.null_count:
            first_null = np.flatnonzero(pyarrow.compute.is_null(column).to_numpy(zero_copy_only=False))[0]
            raise self.error(f"empty value in column {name!r}", int(first_null))
        kind = column.type
        if pyarrow.types.is_dictionary(kind):
            column, kind = column.cast(kind.value_type), kind.value_type
        if pyarrow.types.is_integer(kind) or pyarrow.types.is_floating(kind):
            return column.to_numpy()
        if pyarrow.types.is_string(kind) or pyarrow.types.is_large_string(kind):
            return column.to_numpy(zero_copy_only=False).astype(str)
        if pyarrow.types.is_timestamp(kind) or pyarrow.types.is_date(kind):
            return column.to_numpy(zero_copy_only=False).astype("datetime64[ns]").view(np.int64)
        raise self.error(f"column {name!r} has type {kind}; expected integers, strings, numbers or timestamps")
