"""The Whoosh schema and the facet list: the one place field types are chosen."""

from __future__ import annotations

from dataclasses import dataclass

from whoosh import fields

SCHEMA_VERSION = 1


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

# Boost of a match in the package name over a match anywhere else in a spec.
NAME_BOOST = 4.0


def make_schema() -> fields.Schema:
    """The schema of one generation of the index."""
    return fields.Schema(
        id=fields.ID(stored=True, unique=True),
        hash=fields.ID(),
        # Terms come pre-split by documents.word_terms, so a space-separated keyword
        # field is all the analysis needed; scorable keeps frequencies for BM25F.
        name=fields.KEYWORD(lowercase=True, scorable=True),
        text=fields.KEYWORD(lowercase=True, scorable=True),
        # The whole spec, for hits; facet values live in our own bitmaps (facets.py).
        doc=fields.STORED(),
    )
