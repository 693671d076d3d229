"""The Whoosh schema and the facet list: the one place field types are chosen."""

from __future__ import annotations

from dataclasses import dataclass

from whoosh import fields

SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Facet:
    """A facet: its field and URL parameter name, its label, whether a doc holds several."""

    name: str
    label: str
    multi: bool = False


FACETS: tuple[Facet, ...] = (
    Facet("tag", "Build-cache tag"),
    Facet("package", "Package"),
    Facet("version", "Version"),
    Facet("compiler", "Compiler"),
    Facet("os", "OS"),
    Facet("platform", "Platform"),
    Facet("target", "Target"),
    Facet("stack", "Stack", multi=True),
    Facet("variant", "Variant", multi=True),
)
FACET_NAMES: tuple[str, ...] = tuple(f.name for f in FACETS)
FACET_BY_NAME: dict[str, Facet] = {f.name: f for f in FACETS}


def make_schema() -> fields.Schema:
    """The schema of one shard of the index.

    Whoosh holds each spec (a stored row), its unique id, its hash (exact and prefix
    look-ups) and its package-name terms. Facet values and the free-text terms derived from
    them live in facets.py as bitmaps: indexing them in Whoosh too cost 2.7x in build time
    (4.2k vs 11.3k docs/s, 30k specs) and answering them from Whoosh postings costs a
    Python loop per matching document.
    """
    return fields.Schema(
        id=fields.ID(unique=True),
        hash=fields.ID(),
        # Terms come pre-split by documents.word_terms: a space-separated keyword field.
        name=fields.KEYWORD(lowercase=True, scorable=True),
        doc=fields.STORED(),
    )
