"""Every hit of a query as CSV or NDJSON text, a chunk of rows at a time (streamed)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from searcher.documents import Spec
from searcher.search import Export

FORMATS = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection);
# such a value (from an outside listing) is written with a leading apostrophe. '+', '-'
# and '~' start ordinary variants (+cuda, ~mpi) and are left alone.
_FORMULA_START = ("=", "@", "\t", "\r")

# The columns of an exported row, in order (a hit's fields; lists joined by ';' in CSV).
EXPORT_FIELDS = (
    "id", "package", "version", "tag", "hash", "compiler", "os", "platform", "target",
    "variants", "stacks", "size", "tarball", "dependencies",
)  # fmt: skip


def lines(result: Export, kind: str) -> Iterator[str]:
    """The export as text pieces: CSV (a header, then a row per spec; lists joined by
    ';') or NDJSON (a JSON object per spec, one per line)."""
    if kind == "csv":
        yield from _csv(result)
    else:
        for chunk in result.chunks:
            yield "".join(json.dumps(export_row(s), ensure_ascii=False) + "\n" for s in chunk)


def _csv(result: Export) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_FIELDS)
    for chunk in result.chunks:
        for spec in chunk:
            row = export_row(spec)
            writer.writerow(_cell(row[name]) for name in EXPORT_FIELDS)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = ";".join(value) if isinstance(value, list) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def export_row(spec: Spec) -> dict[str, Any]:
    """One exported spec: the hit's fields (dependencies as name@version/hash)."""
    record = spec.to_record()
    record["dependencies"] = [
        f"{d.name}@{d.version}/{d.hash}" if d.version else f"{d.name}/{d.hash}"
        for d in spec.dependencies
    ]
    return {name: record[name] for name in EXPORT_FIELDS}
