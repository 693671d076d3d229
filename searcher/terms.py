"""Free text over the facet values: terms, package names, autocomplete and did-you-mean.

Free-text terms are derived from facet values (``documents.word_terms``), at the
vocabulary level: a term's documents are the union of the documents of the values it
appears in (``ubuntu24.04``; ``cuda`` from ``+cuda`` and from ``ml-linux-x86_64-cuda``),
so terms cost nothing per document at build time. Unions of frequent words are kept in a
small cache that a server's threads share.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol

from pyroaring import BitMap, FrozenBitMap

from searcher.bitmaps import BitmapStore
from searcher.documents import normalize_compiler, word_terms
from searcher.schema import FACETS

_TERM_CACHE = 512


class Matcher(Hashable, Protocol):
    """A condition on facet values (a version list, a compiler, a variant of a query)."""

    def matches(self, value: str) -> bool: ...


class TermIndex:
    """Term and name look-ups over one generation's BitmapStore."""

    def __init__(self, store: BitmapStore):
        self._store = store
        self._vocabulary = _Vocabulary(store.values)
        self._cache: OrderedDict[tuple[Any, ...], FrozenBitMap] = OrderedDict()
        self._cache_lock = threading.Lock()

    def term_set(self, word: str, prefix: bool = False) -> FrozenBitMap:
        """Documents with a free-text term (or a term starting with word, for a prefix)."""
        return self._cached(("term", word, prefix), lambda: self._vocabulary.refs(word, prefix))

    def name_sets(self, word: str, prefix: bool = False) -> tuple[FrozenBitMap, FrozenBitMap]:
        """(documents whose package is word, documents with word in the package name)."""
        exact = self._cached(
            ("exact", word, prefix), lambda: self._vocabulary.name_refs(word, prefix, exact=True)
        )
        part = self._cached(
            ("part", word, prefix), lambda: self._vocabulary.name_refs(word, prefix, exact=False)
        )
        return exact, part

    def _cached(
        self, key: tuple[Any, ...], refs: Callable[[], list[tuple[str, int]]]
    ) -> FrozenBitMap:
        # The documents of frequent words are unions of many values; keep recent ones.
        # Server threads share this cache: every use of it holds the lock.
        with self._cache_lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        maps = [self._store.bitmaps[facet][i] for facet, i in refs()]
        found = FrozenBitMap(BitMap.union(*maps)) if maps else FrozenBitMap()
        with self._cache_lock:
            self._cache[key] = found
            if len(self._cache) > _TERM_CACHE:
                self._cache.popitem(last=False)
        return found

    def matching(self, facet: str, clause: Matcher) -> FrozenBitMap:
        """Documents holding a value of a facet that clause.matches(value) accepts,
        remembered under the clause (hashable, equal for equal conditions)."""
        values = self._store.values[facet]
        return self._cached(
            ("match", facet, clause),
            lambda: [(facet, i) for i, v in enumerate(values) if clause.matches(v)],
        )

    def complete(self, prefix: str, limit: int) -> list[tuple[str, int]]:
        """Packages whose name, or a part of it, starts with prefix; most specs first."""
        found = {i for _, i in self._vocabulary.name_refs(prefix.lower(), True, exact=False)}
        sizes, names = self._store.sizes["package"], self._store.values["package"]
        best = sorted(found, key=lambda i: (-sizes[i], names[i]))[:limit]
        return [(names[i], int(sizes[i])) for i in best]

    def closest(self, facets: Sequence[str], text: str, limit: int = 3) -> list[str]:
        """Values of the given facets within a small edit distance of text (did-you-mean)."""
        text = text.lower()
        reach = 1 if len(text) <= 4 else 2
        scored = []
        for facet in facets:
            for i, value in enumerate(self._store.values[facet]):
                folded = value.lower()
                if abs(len(folded) - len(text)) <= reach and folded != text:
                    distance = _distance(text, folded, reach)
                    if distance <= reach:
                        scored.append((distance, -int(self._store.sizes[facet][i]), value))
        # Only the nearest spellings: ubuntu2404 -> ubuntu24.04, not also ubuntu20.04.
        nearest = min((d for d, _, _ in scored), default=0)
        return list(dict.fromkeys(v for d, _, v in sorted(scored) if d == nearest))[:limit]


class _Vocabulary:
    """Free-text term -> the facet values it appears in, and package-name terms."""

    def __init__(self, values: dict[str, list[str]]):
        refs: dict[str, list[tuple[str, int]]] = {}
        for facet in FACETS:
            if not facet.text:
                continue
            for i, value in enumerate(values[facet.name]):
                spellings = [value]
                if facet.name == "compiler":
                    spellings.append(normalize_compiler(value))
                for term in dict.fromkeys(t for s in spellings for t in word_terms(s)):
                    refs.setdefault(term, []).append((facet.name, i))
        self._refs = refs
        self._vocabulary = sorted(refs)
        self._packages = [p.lower() for p in values["package"]]
        parts: dict[str, list[int]] = {}
        for i, package in enumerate(self._packages):
            for term in word_terms(package):
                parts.setdefault(term, []).append(i)
        self._name_parts = parts
        self._name_vocabulary = sorted(parts)

    def refs(self, word: str, prefix: bool) -> list[tuple[str, int]]:
        if not prefix:
            return self._refs.get(word, [])
        return [ref for term in _starting(self._vocabulary, word) for ref in self._refs[term]]

    def name_refs(self, word: str, prefix: bool, *, exact: bool) -> list[tuple[str, int]]:
        if exact:
            return [
                ("package", i)
                for i, name in enumerate(self._packages)
                if (name.startswith(word) if prefix else name == word)
            ]
        terms = _starting(self._name_vocabulary, word) if prefix else [word]
        found = sorted({i for term in terms for i in self._name_parts.get(term, [])})
        return [("package", i) for i in found]


def _starting(vocabulary: list[str], prefix: str) -> list[str]:
    start = bisect.bisect_left(vocabulary, prefix)
    end = bisect.bisect_left(vocabulary, prefix + "\U0010ffff")
    return vocabulary[start:end]


def _distance(a: str, b: str, limit: int) -> int:
    """Edit distance with adjacent transpositions, giving up above limit."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = ca != cb
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]
