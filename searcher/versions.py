"""Versions and version ranges with Spack's ordering and matching rules.

Ordering (as spack.version does it): a version splits into numeric and alphabetic
components, separators ignored. Numbers compare as numbers; a word compares below any
number, except the "infinity" words, which compare above every number, in the order
stable < trunk < head < master < main < develop. A trailing alpha/beta/rc (with an
optional number) marks a prerelease, below the release itself: 1.0rc1 < 1.0 < 1.0.1.

Matching (as ``@`` in a spec): ``@1.2`` is the range 1.2:1.2, which holds 1.2 and every
version below 1.3 (1.2.x, 1.2a); ``@=1.2`` holds exactly 1.2; ``@1.2:1.4`` holds 1.2 up
to, not including, 1.5 (Spack's ranges are [lo, the version after hi));
``@:3`` and ``@4.2:`` are open; ``@1.2,1.5:`` (or ``@1.2, 1.5:``) is a list (any of). A
git version assigned a version (``git.<ref>=1.2``) lies in the ranges its version does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

INFINITY_VERSIONS = ("stable", "trunk", "head", "master", "main", "develop")
_SEGMENT = re.compile(r"([0-9]+)|([a-zA-Z]+)")
_FINAL = 3
# As spack.version: a trailing "final" is the release itself (1.0final is 1.0).
_PRERELEASE = {"alpha": 0, "beta": 1, "rc": 2, "final": _FINAL}

Component = tuple[int, int | str]


@dataclass(frozen=True, order=True)
class Version:
    """A concrete version; compares in Spack's order.

    A git version (`git.<ref>=<version>`, `<40-hex sha>=<version>`) compares as the
    version it is assigned, just after that version itself (then by ref); one with no
    version assigned (`git.<ref>`) after every other version.
    """

    release: tuple[Component, ...]
    prerelease: tuple[int, ...] = (_FINAL,)
    git_ref: str = ""  # the ref of a git version, "" for any other

    @property
    def is_unassigned_git(self) -> bool:
        """A git ref with no Spack version assigned: it stands for no range of versions."""
        return self.release[:1] == ((_UNASSIGNED, 0),)


_GIT_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_UNASSIGNED = 3  # above numbers (1) and infinity words (2)


@lru_cache(maxsize=65536)
def parse_version(text: str) -> Version:
    """The Version of a string such as '1.2.3', '2.26-t9b_atlas', '1.0rc1', 'develop',
    'git.v2.1=2.1' or '<sha>=develop'."""
    ref, _, assigned = text[4:].partition("=") if text.startswith("git.") else ("", "", "")
    if not ref:
        sha, sep, rest = text.partition("=")
        if _GIT_SHA.fullmatch(sha):
            ref, assigned = sha, rest if sep else ""
    if ref:
        if not assigned:
            return Version(((_UNASSIGNED, 0),), (_FINAL,), ref)
        standard = _parse_standard(assigned)
        return Version(standard.release, standard.prerelease, ref)
    return _parse_standard(text)


def _parse_standard(text: str) -> Version:
    segments = [(num, word) for num, word in _SEGMENT.findall(text)]
    prerelease: tuple[int, ...] = (_FINAL,)
    if len(segments) >= 3 and segments[-2][1] in _PRERELEASE and segments[-1][0]:
        prerelease = (_PRERELEASE[segments[-2][1]], int(segments[-1][0]))
        segments = segments[:-2]
    elif len(segments) >= 2 and segments[-1][1] in _PRERELEASE:
        prerelease = (_PRERELEASE[segments[-1][1]],)
        segments = segments[:-1]
    release = []
    for num, word in segments:
        if num:
            release.append((1, int(num)))
        elif word in INFINITY_VERSIONS:
            release.append((2, INFINITY_VERSIONS.index(word)))
        else:
            release.append((0, word))
    return Version(tuple(release), prerelease)


@dataclass(frozen=True)
class VersionRange:
    """lo:hi (either end open when None); exact when written @=."""

    lo: Version | None
    hi: Version | None
    exact: bool = False

    def __contains__(self, version: Version) -> bool:
        if self.lo is not None and self.lo.git_ref:
            # A git version asked for (@git.v2.1, @git.v2.1=2.1): that ref, and the same
            # assigned version when one is given (as Spack's GitVersion.satisfies).
            same = (version.release, version.prerelease) == (self.lo.release, self.lo.prerelease)
            return version.git_ref == self.lo.git_ref and (self.lo.is_unassigned_git or same)
        if version.is_unassigned_git:
            return self.lo is None and self.hi is None and not self.exact
        if self.exact:
            # @=1.2 is that standard version: not a git ref assigned 1.2, as in Spack.
            return version == self.lo
        if self.lo is not None and version < self.lo:
            return False
        # As in Spack, lo:hi is [lo, the version after hi): :1.4 holds 1.4.2 (and 1.5rc1),
        # :1.4rc1 holds 1.4rc1 but not 1.4rc2.
        return self.hi is None or version < _successor(self.hi)


@dataclass(frozen=True)
class VersionList:
    """Ranges ORed together, as in @1.2,1.5: ."""

    ranges: tuple[VersionRange, ...]

    def matches(self, text: str) -> bool:
        """Whether a version string lies in any of the ranges."""
        version = parse_version(text)
        return any(version in r for r in self.ranges)


def _successor(version: Version) -> Version:
    """The version Spack puts right after the versions `version` stands for in a range
    (spack.version's next version): its last number or word, or its prerelease number,
    one up."""
    kind, *number = version.prerelease
    if kind != _FINAL:  # alpha, beta, rc: the next of them (1.0rc1 -> 1.0rc2, rc -> rc0)
        return Version(version.release, (kind, number[0] + 1 if number else 0))
    if not version.release:
        return Version(((0, "A"),))
    *head, (kind, last) = version.release
    if isinstance(last, int):  # a number, or an infinity word's rank
        return Version((*head, (kind, last + 1)))
    word = _next_word(last)
    while word in INFINITY_VERSIONS:  # those are not words (masteq -> mastes)
        word = _next_word(word)
    return Version((*head, (kind, word)))


def _next_word(word: str) -> str:
    """The next word over A-Z then a-z, as spack.version's _next_str: z -> zA, Z -> a."""
    if not word or word[-1] == "z":
        return word + "A"
    return word[:-1] + ("a" if word[-1] == "Z" else chr(ord(word[-1]) + 1))


class VersionSyntaxError(ValueError):
    """A version list that cannot be read; offset is relative to the list's start."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


_VERSION_TEXT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# A git version: git.<ref> or a commit sha, and =<version> (no range: 400).
_GIT_TEXT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(=[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")


def parse_version_list(text: str) -> VersionList:
    """Parse what follows '@': '3.9.2', '=3.9.2', '1.2:1.4', ':3', '4.2:', '1.2,1.5:'."""
    ranges = []
    offset = 0
    for part in text.split(","):
        stripped = part.strip()  # spaces around commas are allowed, as in Spack
        ranges.append(_parse_range(stripped, offset + len(part) - len(part.lstrip())))
        offset += len(part) + 1
    return VersionList(tuple(ranges))


def _parse_range(part: str, offset: int) -> VersionRange:
    if not part:
        raise VersionSyntaxError("empty version", offset)
    git = part.removeprefix("=")
    if parse_version(git).git_ref:
        _check(git, offset + len(part) - len(git), _GIT_TEXT)
        return VersionRange(parse_version(git), parse_version(git))
    if part.startswith("="):
        body = part[1:]
        _check(body, offset + 1)
        return VersionRange(parse_version(body), parse_version(body), exact=True)
    if ":" in part:
        lo, _, hi = part.partition(":")
        if ":" in hi:
            raise VersionSyntaxError("a range has one ':'", offset + len(lo) + 1 + hi.index(":"))
        if lo:
            _check(lo, offset)
        if hi:
            _check(hi, offset + len(lo) + 1)
        return VersionRange(parse_version(lo) if lo else None, parse_version(hi) if hi else None)
    _check(part, offset)
    version = parse_version(part)
    return VersionRange(version, version)


def _check(text: str, offset: int, pattern: re.Pattern[str] = _VERSION_TEXT) -> None:
    if not pattern.match(text):
        allowed = "_.-=" if pattern is _GIT_TEXT else "_.-"
        bad = next((i for i, c in enumerate(text) if not (c.isalnum() or c in allowed)), 0)
        raise VersionSyntaxError(f"{text!r} is not a version", offset + bad)
