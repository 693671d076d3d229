"""Version ordering in the spirit of Spack's: numeric components compare as numbers."""

from __future__ import annotations

import re

# Spack orders these above every numbered release, in this order (develop highest).
INFINITY_VERSIONS = ("develop", "main", "master", "head", "trunk", "stable")
_COMPONENT = re.compile(r"\d+|[A-Za-z]+")


def version_key(version: str) -> tuple:
    """A sort key: 1.10 > 1.9, 1.2.1 > 1.2, develop > 9.9, and 1.0a < 1.0.0."""
    key = []
    for part in _COMPONENT.findall(version):
        if part.isdigit():
            key.append((1, int(part), ""))
        elif part.lower() in INFINITY_VERSIONS:
            key.append((2, len(INFINITY_VERSIONS) - INFINITY_VERSIONS.index(part.lower()), ""))
        else:
            key.append((0, 0, part.lower()))
    return tuple(key)
