"""Export rows: each document's stored row as MessagePack, in one file per shard, read a
chunk at a time by exports.

Whoosh holds the stored row every page of hits shows; reading it costs a seek, a read, a
zlib inflate and an unpickle per document, through several Python layers: ~20 us, the
floor of an export that reads it (100,000 rows: ~2 s of the 3 s an export may take).
Exports read this file instead, as Solr's /export handler reads docValues rather than
stored fields: ``rows.bin`` holds every row's MessagePack encoding end to end, in
document order, and ``rows-offsets.npy`` where each starts; a chunk of rows is sliced out
of the memory-mapped file, joined under one array header and decoded, typed, by one
msgspec call (~1 us a row). The rows are the same tuples Whoosh stores
(documents.ROW_FIELDS), so the two cannot disagree about a field: both are written from
one Spec.to_row() (index.ShardWriter).
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import numpy as np

from searcher.columns import mapped

ROWS_FILE = "rows.bin"
OFFSETS_FILE = "rows-offsets.npy"

# A stored row, as documents.ROW_FIELDS orders it: tag, package, hash, version,
# compiler, os, platform, target, variants, stacks, size, tarball.
Row = tuple[str, str, str, str, str, str, str, str, list[str], list[str], int | None, str | None]
_decode_rows = msgspec.msgpack.Decoder(list[Row]).decode


class RowWriter:
    """Appends rows to a shard's rows.bin; finish() writes their offsets."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._file: BinaryIO = (directory / ROWS_FILE).open("xb")
        self._encode = msgspec.msgpack.Encoder().encode
        self._offsets = [0]

    def add(self, row: tuple[Any, ...]) -> None:
        """Append one stored row."""
        data = self._encode(row)
        self._file.write(data)
        self._offsets.append(self._offsets[-1] + len(data))

    def finish(self) -> None:
        """Close rows.bin and write rows-offsets.npy."""
        self._file.close()
        offsets = np.array(self._offsets, dtype=np.int64)
        np.save(self.directory / OFFSETS_FILE, offsets, allow_pickle=False)

    def cancel(self) -> None:
        """Close the file (the caller removes the directory)."""
        self._file.close()


class RowReader:
    """A shard's rows.bin, memory-mapped; ValueError at open if it does not fit `docs`."""

    def __init__(self, directory: Path, docs: int):
        self._offsets = mapped(directory / OFFSETS_FILE)
        path = directory / ROWS_FILE
        size = path.stat().st_size
        o = self._offsets
        fits = (
            o.dtype == np.int64
            and len(o) == docs + 1
            and int(o[0]) == 0
            and int(o[-1]) == size
            and bool(np.all(np.diff(o) > 0))
        )
        if not fits:
            raise ValueError(f"{path}: its offsets do not fit {docs} documents")
        self._map: mmap.mmap | None = None
        if size:
            with path.open("rb") as file:
                self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)

    def rows(self, numbers: Sequence[int]) -> list[Row]:
        """The rows of these document numbers, in order; ValueError if the file is
        damaged (it decodes to something that is not rows)."""
        if not len(numbers) or self._map is None:
            return []
        which = np.asarray(numbers, dtype=np.int64)
        starts, stops = self._offsets[which].tolist(), self._offsets[which + 1].tolist()
        data = self._map
        header = b"\xdd" + len(which).to_bytes(4, "big")  # a MessagePack array32
        joined = header + b"".join([data[a:b] for a, b in zip(starts, stops, strict=True)])
        try:
            return _decode_rows(joined)
        except msgspec.DecodeError as exc:
            raise ValueError(f"damaged export rows: {exc}") from exc

    def close(self) -> None:
        """Unmap the file."""
        if self._map is not None:
            self._map.close()
            self._map = None
