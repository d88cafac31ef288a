"""Opening data files: the name's format and compression, decompression and decoding.

A compressed file is named by its format and then its compression (``ratings.csv.gz``,
``Beauty.txt.zst``); the compression is taken from the last suffix, the format from the one
before it.  Every failure is a one-line :class:`DataFormatError` naming the file.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import zlib
from pathlib import Path
from typing import Callable, Optional

from .interactions import DataFormatError

COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}

# First bytes of the compressed formats and of Parquet, to explain a file that is not text.
_MAGIC = {
    b"\x1f\x8b": ".gz",
    b"BZh": ".bz2",
    b"\xfd7zXZ\x00": ".xz",
    b"\x28\xb5\x2f\xfd": ".zst",
    b"PAR1": ".parquet",
}
_UTF16_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def format_and_compression(path) -> tuple[str, Optional[str]]:
    """``"ratings.csv.gz"`` -> ``("csv", "gzip")``; ``"Beauty.txt"`` -> ``("txt", None)``."""
    name = Path(path).name.lower()
    stem, dot, suffix = name.rpartition(".")
    compression = COMPRESSIONS.get(f".{suffix}") if dot else None
    if compression is not None:
        name = stem
    _, dot, format_suffix = name.rpartition(".")
    return (format_suffix if dot else ""), compression


def dataset_name(path) -> str:
    """The file name without its compression and format suffixes: ``ratings.csv.gz`` -> ``ratings``."""
    name = Path(path).name
    if Path(name).suffix.lower() in COMPRESSIONS:
        name = Path(name).stem
    return Path(name).stem


def check_file(path) -> None:
    """Fail clearly on a path that is missing or is a directory."""
    if Path(path).is_dir():
        raise DataFormatError(path, "is a directory, not a data file")
    if not Path(path).exists():
        raise DataFormatError(path, "no such file")


def read_bytes(path) -> bytes:
    """The file's contents, decompressed as its last suffix says."""
    path = Path(path)
    check_file(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, "no such file") from None
    except OSError as error:
        raise DataFormatError(path, f"cannot read the file: {error.strerror or error}") from None
    compression = format_and_compression(path)[1]
    if compression is None:
        return blob
    try:
        return _decompressor(path, compression)(blob)
    except (EOFError, OSError, zlib.error, lzma.LZMAError, _ZstdError) as error:
        reason = str(error).strip() or type(error).__name__
        message = f"cannot decompress it as {compression} ({reason}): the file is truncated or not {compression}"
        raise DataFormatError(path, message) from None


def read_text(path, encoding: str = "utf-8") -> str:
    """The decompressed file decoded with ``encoding`` (a UTF-8 byte-order mark is dropped),
    with Windows line ends made ``\\n``.  A byte that does not decode is an error naming its
    line; nothing is replaced silently."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise DataFormatError(path, f"encoding: unknown text encoding {encoding!r}") from None
    blob = read_bytes(path)
    try:
        text = blob.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as error:
        raise _decode_error(path, blob, error, codec) from None
    return text.replace("\r\n", "\n") if "\r" in text else text


def _decode_error(path, blob: bytes, error: UnicodeDecodeError, codec: str) -> DataFormatError:
    looks_like = next((suffix for magic, suffix in _MAGIC.items() if blob.startswith(magic)), None)
    if looks_like and not Path(path).name.lower().endswith(looks_like):
        return DataFormatError(path, f"the file is {looks_like} data but its name does not end in {looks_like}")
    if blob.startswith(_UTF16_MARKS):
        return DataFormatError(path, "the file starts with a UTF-16 byte-order mark; pass encoding='utf-16'")
    line = blob.count(b"\n", 0, error.start) + 1
    column = error.start - (blob.rfind(b"\n", 0, error.start) + 1) + 1
    message = (
        f"byte 0x{blob[error.start]:02x} at column {column} is not valid {codec}; "
        "pass the file's encoding (e.g. encoding='latin-1')"
    )
    return DataFormatError(path, message, line)


def _decompressor(path, compression: str) -> Callable[[bytes], bytes]:
    if compression == "zstd":
        return _zstd_decompress(path)
    return {"gzip": gzip.decompress, "bz2": bz2.decompress, "xz": lzma.decompress}[compression]


try:  # optional: .zst input needs the zstandard package
    import zstandard

    _ZstdError = zstandard.ZstdError
except ImportError:
    zstandard = None

    class _ZstdError(Exception):
        """Stands in for zstandard.ZstdError, which cannot be raised without the package."""


def _zstd_decompress(path) -> Callable[[bytes], bytes]:
    if zstandard is None:
        raise DataFormatError(path, "reading .zst files needs the zstandard package: pip install zstandard")

    def decompress(blob: bytes) -> bytes:
        # Frame by frame, checking each is complete: the stream reader returns a truncated
        # file's partial contents without an error.
        parts = []
        while blob:
            frame = zstandard.ZstdDecompressor().decompressobj()
            parts.append(frame.decompress(blob))
            if not frame.eof:
                raise EOFError("the data ends inside a frame")
            blob = frame.unused_data
        return b"".join(parts)

    return decompress
