"""An independent, obviously-correct model of the listing, for expected values in tests.

It reads pages with plain string handling and json (the production reader uses PyYAML)
and answers facet questions with loops over every spec, so a test's expected side never
goes through the code under test.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

FACETS = ("tag", "package", "version", "compiler", "os", "platform", "target", "stack", "variant")
INFINITY = ("develop", "main", "master", "head", "trunk", "stable")


def read_listing(root: Path) -> list[dict]:
    """Every spec of every tagged page under root, in the order the files list them."""
    specs = []
    for path in sorted(root.glob("*/*/specs.md")):
        text = path.read_text(encoding="utf-8")
        categories = re.search(r"^categories: \[package, (.+)\]$", text, re.M)
        details = re.search(r"^spec_details: (\[.*\])$", text, re.M)
        title = re.search(r'^title: "(.+)"$', text, re.M)
        if not (categories and details and title):
            continue  # the legacy pages
        for entry in json.loads(details.group(1)):
            specs.append({**entry, "tag": categories.group(1), "package": title.group(1)})
    return specs


def values(spec: dict, facet: str) -> list[str]:
    """The facet values of a raw spec, as README documents them (compiler '@=' folded)."""
    if facet == "version":
        return [spec["versions"][0]]
    if facet == "compiler":
        return [spec["compiler"].replace("@=", "@")]
    if facet == "stack":
        return list(dict.fromkeys(spec["stacks"]))
    if facet == "variant":
        return list(dict.fromkeys(spec["variants"]))
    return [spec[facet]]


def hit(spec: dict) -> dict:
    """The API's hit object for a raw spec."""
    size = spec.get("size")
    return {
        "id": f"{spec['tag']}/{spec['hash']}",
        "package": spec["package"],
        "version": spec["versions"][0],
        "tag": spec["tag"],
        "hash": spec["hash"],
        "compiler": spec["compiler"],
        "os": spec["os"],
        "platform": spec["platform"],
        "target": spec["target"],
        "variants": spec["variants"],
        "stacks": spec["stacks"],
        "size": int(size) if isinstance(size, str) and size.isdigit() else None,
        "tarball": spec.get("tarball"),
    }


def matches(spec: dict, filters: dict[str, list[str]], skip: str | None = None) -> bool:
    """Same facet ORs, different facets AND; `skip` ignores one facet's selection."""
    return all(
        set(values(spec, facet)) & set(wanted) for facet, wanted in filters.items() if facet != skip
    )


def facet_rows(specs: list[dict], filters: dict[str, list[str]], size: int = 20) -> dict:
    """Expected "facets" of the API: counts ignore the facet's own selection."""
    rows = {}
    for facet in FACETS:
        counts = Counter(
            v for s in specs if matches(s, filters, skip=facet) for v in values(s, facet)
        )
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
        chosen = filters.get(facet, [])
        row = [{"value": v, "count": n, "selected": v in chosen} for v, n in top]
        shown = {v for v, _ in top}
        row += [
            {"value": v, "count": counts.get(v, 0), "selected": True}
            for v in chosen
            if v not in shown
        ]
        rows[facet] = row
    return rows


def version_key(version: str) -> tuple:
    """Spack-like: numbers compare as numbers, develop and friends above all."""
    key = []
    for part in re.findall(r"\d+|[A-Za-z]+", version):
        if part.isdigit():
            key.append((1, int(part), ""))
        elif part.lower() in INFINITY:
            key.append((2, -INFINITY.index(part.lower()), ""))
        else:
            key.append((0, 0, part.lower()))
    return tuple(key)


def display_order(specs: list[dict]) -> list[dict]:
    """README's order for unscored results: package, newest version, tag (develop first,
    then newest), os, target, compiler, then the order the listing gives them in."""
    tags = sorted({s["tag"] for s in specs}, reverse=True)
    tags.sort(key=lambda t: t != "develop")
    tag_rank = {t: i for i, t in enumerate(tags)}
    indexed = list(enumerate(specs))
    indexed.sort(key=lambda p: p[0])
    indexed.sort(key=lambda p: (p[1]["os"], p[1]["target"], p[1]["compiler"].replace("@=", "@")))
    indexed.sort(key=lambda p: tag_rank[p[1]["tag"]])
    indexed.sort(key=lambda p: version_key(p[1]["versions"][0]), reverse=True)
    indexed.sort(key=lambda p: p[1]["package"])
    return [s for _, s in indexed]
