"""An independent, obviously-correct model of the listing, for expected values in tests.

It reads pages with plain string handling and json (the production reader uses PyYAML)
and answers facet questions with loops over every spec, so a test's expected side never
goes through the code under test.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from pathlib import Path

FACETS = (
    "tag",
    "package",
    "version",
    "compiler",
    "os",
    "platform",
    "target",
    "stack",
    "variant",
    "dependency",
)


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
    if facet == "dependency":  # direct link/run dependencies (listing pages have none)
        return list(
            dict.fromkeys(
                d["name"]
                for d in spec.get("dependencies", [])
                if {"link", "run"} & set(d["deptypes"])
            )
        )
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
        "dependencies": spec.get("dependencies", []),
    }


# The README's contract: selected variants AND (a spec holds every one); the values of
# any other facet OR.
AND_FACETS = {"variant"}


def matches(spec: dict, filters: dict[str, list[str]], skip: str | None = None) -> bool:
    """Different facets AND; within one, values OR (variants AND); `skip` ignores one
    facet's selection."""
    for facet, wanted in filters.items():
        if facet == skip:
            continue
        held = set(values(spec, facet))
        if not (held >= set(wanted) if facet in AND_FACETS else held & set(wanted)):
            return False
    return True


def facet_rows(specs: list[dict], filters: dict[str, list[str]], size: int = 20) -> dict:
    """Expected "facets" of the API: counts ignore the facet's own selection, except for
    variants (which AND: their counts are over the hits)."""
    rows = {}
    for facet in FACETS:
        skip = None if facet in AND_FACETS else facet
        counts = Counter(
            v for s in specs if matches(s, filters, skip=skip) for v in values(s, facet)
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


# -- Spack's version order, from its documented rules ("Version comparison") -------------
#
# Written as a pairwise comparison, not a sort key, so it shares no code or shape with
# searcher/versions.py; tests/test_versions.py checks it against literal tables.

INFINITY_ASCENDING = ("stable", "trunk", "head", "master", "main", "develop")
PRERELEASES = ("alpha", "beta", "rc", "final")  # "final" is the release itself
GIT_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def _git(version: str) -> tuple[str, str | None] | None:
    """(ref, assigned version or None) of a git version; None for any other version."""
    if version.startswith("git."):
        ref, sep, assigned = version[4:].partition("=")
        return ref, assigned if sep else None
    sha, sep, assigned = version.partition("=")
    if GIT_SHA.fullmatch(sha):
        return sha, assigned if sep else None
    return None


def _release_and_prerelease(version: str) -> tuple[list[str], list[str]]:
    parts = re.findall(r"[0-9]+|[A-Za-z]+", version)
    if len(parts) >= 3 and parts[-2] in PRERELEASES and parts[-1].isdigit():
        return parts[:-2], parts[-2:]
    if len(parts) >= 2 and parts[-1] in PRERELEASES:
        return parts[:-1], parts[-1:]
    return parts, []


def _compare_parts(a: str, b: str) -> int:
    """One release component with another: infinity words above numbers above words."""
    if a == b:
        return 0
    a_inf, b_inf = a in INFINITY_ASCENDING, b in INFINITY_ASCENDING
    if a_inf or b_inf:
        if a_inf and b_inf:
            return -1 if INFINITY_ASCENDING.index(a) < INFINITY_ASCENDING.index(b) else 1
        return 1 if a_inf else -1
    if a.isdigit() and b.isdigit():  # as numbers: 02 is 2
        return (int(a) > int(b)) - (int(a) < int(b))
    if a.isdigit() or b.isdigit():
        return 1 if a.isdigit() else -1
    return -1 if a < b else 1


def _compare_standard(a: str, b: str) -> int:
    return _compare_split(_release_and_prerelease(a), _release_and_prerelease(b))


Split = tuple[list[str], list[str]]  # (release parts, prerelease parts) of a version


def _compare_split(a: Split, b: Split) -> int:
    (ra, pa), (rb, pb) = a, b
    for x, y in zip(ra, rb, strict=False):
        if order := _compare_parts(x, y):
            return order
    if len(ra) != len(rb):
        return -1 if len(ra) < len(rb) else 1
    # alpha < beta < rc < the release (or "final"), each without a number below with one.
    ka, kb = _prerelease_rank(pa), _prerelease_rank(pb)
    return (ka > kb) - (ka < kb)


def _prerelease_rank(pre: list[str]) -> list[int]:
    if not pre:
        return [PRERELEASES.index("final")]
    return [PRERELEASES.index(pre[0]), *(int(n) for n in pre[1:])]


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as a is below, equal to or above b in Spack's order.

    A git version compares as the version it is assigned, right after that version itself
    (two git versions of one assigned version by ref); one with none assigned above all.
    """
    ga, gb = _git(a), _git(b)
    a_unassigned, b_unassigned = bool(ga and ga[1] is None), bool(gb and gb[1] is None)
    if a_unassigned and b_unassigned:
        return _sign(ga[0], gb[0])
    if a_unassigned or b_unassigned:
        return 1 if a_unassigned else -1
    order = _compare_standard(ga[1] if ga else a, gb[1] if gb else b)
    if order:
        return order
    if ga and gb:
        return _sign(ga[0], gb[0])
    if ga or gb:
        return 1 if ga else -1
    return 0


def _sign(a: str, b: str) -> int:
    return (a > b) - (a < b)


version_key = functools.cmp_to_key(compare_versions)


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


def next_version(version: str) -> Split:
    """The version Spack puts right after `version` in a range (lo:hi is [lo, this)), as
    (release parts, prerelease parts): a string would not always read back the same.

    Its prerelease number one up (rc -> rc0), else its last number one up, else its last
    word's last letter one up. Not defined after an infinity word.
    """
    release, pre = _release_and_prerelease(version)
    if pre and pre[0] != "final":
        return release, [pre[0], str(int(pre[1]) + 1 if len(pre) > 1 else 0)]
    last = release[-1]
    if last in INFINITY_ASCENDING:
        raise ValueError(f"no version follows {version!r}")
    if last.isdigit():
        return [*release[:-1], str(int(last) + 1)], []
    # The next word over the letters A..Z a..z, skipping the infinity words (Spack's rule).
    word = last
    while True:
        if word.endswith("z"):
            word += "A"
        else:
            word = word[:-1] + ("a" if word.endswith("Z") else chr(ord(word[-1]) + 1))
        if word not in INFINITY_ASCENDING:
            break
    return [*release[:-1], word], []


def git_holds(version: str, query: str) -> bool:
    """Whether a listed version satisfies a git version asked for: the same ref, and the
    same assigned version when the query gives one."""
    mine, wanted = _git(version), _git(query)
    assert wanted is not None, query
    if mine is None or mine[0] != wanted[0]:
        return False
    return wanted[1] is None or (mine[1] is not None and _compare_standard(mine[1], wanted[1]) == 0)


def in_spack_range(version: str, lo: str | None, hi: str | None) -> bool:
    """Whether `version` lies in Spack's range lo:hi (None: that end open)."""
    git = _git(version)
    if git and git[1] is None:  # a git ref with no version stands for no range
        return lo is None and hi is None
    if lo is not None and compare_versions(version, lo) < 0:
        return False
    if hi is None:
        return True
    hi_release, hi_pre = _release_and_prerelease(hi)
    hi_final = not hi_pre or hi_pre[0] == "final"
    if hi_final and hi_release[-1] in INFINITY_ASCENDING:
        # Nothing spells the version after develop: what lies below it is develop
        # itself, its extensions (develop.1) and everything below develop.
        release = _release_and_prerelease(git[1] if git else version)[0]
        return compare_versions(version, hi) <= 0 or release[: len(hi_release)] == hi_release
    own = _release_and_prerelease(git[1] if git else version)
    return _compare_split(own, next_version(hi)) < 0
