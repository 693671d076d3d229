"""Targets as Spack knows them, from archspec: families, generic levels, the partial
order, Spack's target ranges, and which builds run on a CPU.

archspec (maintained by the Spack project) holds the microarchitectures and their
ancestry: a build for a target runs on that target and on every microarchitecture that
has it as an ancestor (an x86_64_v3 build runs on zen4 and icelake; a neoverse_n1 build
on neoverse_v2; an aarch64 build on any 64-bit Arm). This module is the only one that
imports archspec.

Spack's range syntax, as ArchSpec reads it: ``target=X`` is exactly X; ``target=X:`` is
X or any microarchitecture descending from it (``X <= t``); ``target=:X`` is X or any of
its ancestors (``t <= X``: what X can run); ``target=A:B`` both; a comma makes a list
(any of its items). A name archspec does not know is matched exactly, wherever it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import archspec.cpu

# Families shown first, in this order, in the runs-on selector and the target facet.
MAIN_FAMILIES = ("x86_64", "aarch64", "ppc64le")
FAMILY_LABELS = {"x86_64": "x86-64", "aarch64": "AArch64", "ppc64le": "POWER (little endian)"}
# CPUs named on a spec page: the common ones a build may run on, per family.
COMMON_CPUS = {
    "x86_64": ("haswell", "skylake_avx512", "icelake", "sapphirerapids", "zen2", "zen3", "zen4"),
    "aarch64": ("neoverse_n1", "neoverse_v1", "neoverse_v2", "a64fx", "m1", "m2"),
    "ppc64le": ("power8le", "power9le", "power10le"),
}


def every() -> list[str]:
    """Every microarchitecture name archspec knows."""
    return list(archspec.cpu.TARGETS)


def known(name: str) -> bool:
    """Whether archspec knows a microarchitecture by this name (in any letter case)."""
    return name.lower() in archspec.cpu.TARGETS


@lru_cache(maxsize=4096)
def ancestors(name: str) -> frozenset[str]:
    """The microarchitectures a target descends from (empty when unknown)."""
    target = archspec.cpu.TARGETS.get(name.lower())
    return frozenset(a.name for a in target.ancestors) if target else frozenset()


def at_most(name: str, other: str) -> bool:
    """``name <= other`` in archspec's order: the same, or an ancestor of other (code for
    name runs on other); False when either is unknown."""
    name, other = name.lower(), other.lower()
    return known(name) and known(other) and (name == other or name in ancestors(other))


def runs_on(host: str) -> frozenset[str]:
    """Every target whose builds run on host: itself and its ancestors (its family's
    generic levels among them); empty when archspec does not know host."""
    host = host.lower()
    return frozenset({host, *ancestors(host)}) if known(host) else frozenset()


def family(name: str) -> str | None:
    """A target's family (x86_64, aarch64, ppc64le...), or None when unknown."""
    target = archspec.cpu.TARGETS.get(name.lower())
    return target.family.name if target else None


def generic(name: str) -> str | None:
    """The most specific generic level a target implements (zen4 -> x86_64_v4)."""
    target = archspec.cpu.TARGETS.get(name.lower())
    return target.generic.name if target else None


def depth(name: str) -> int:
    """How many ancestors a target has: sorts generic before specific."""
    return len(ancestors(name))


def host() -> str:
    """The microarchitecture of the machine this runs on, as archspec detects it."""
    return str(archspec.cpu.host().name)


def families() -> dict[str, list[str]]:
    """Every microarchitecture archspec knows, by family (main families first), each from
    generic to specific (then by name)."""
    found: dict[str, list[str]] = {}
    for name in archspec.cpu.TARGETS:
        found.setdefault(family(name) or name, []).append(name)
    order = [f for f in MAIN_FAMILIES if f in found] + sorted(set(found) - set(MAIN_FAMILIES))
    return {f: sorted(found[f], key=lambda n: (depth(n), n)) for f in order}


def common_hosts(build_target: str) -> list[str]:
    """The common CPUs (COMMON_CPUS) a build for this target runs on."""
    cpus = COMMON_CPUS.get(family(build_target) or "", ())
    return [cpu for cpu in cpus if known(cpu) and at_most(build_target, cpu)]


@dataclass(frozen=True)
class TargetRange:
    """One item of a target constraint: exactly `low` (not ranged), or low:high."""

    low: str
    high: str
    ranged: bool

    def matches(self, value: str) -> bool:
        """Whether an indexed target satisfies this item."""
        if not self.ranged:
            return value == self.low
        unknown = [n for n in (self.low, self.high) if n and not known(n)]
        if unknown:  # matched exactly, as a name
            return value in unknown
        low_ok = not self.low or at_most(self.low, value)
        high_ok = not self.high or at_most(value, self.high)
        return low_ok and high_ok


@dataclass(frozen=True)
class TargetConstraint:
    """`target=` with Spack's range syntax: any of its items (a query Matcher: hashable,
    equal for equal text)."""

    items: tuple[TargetRange, ...]

    @classmethod
    def parse(cls, text: str) -> TargetConstraint:
        """'x86_64_v3:', ':zen4', 'a:b', ':broadwell,icelake' (names lower-cased, as
        archspec spells them); ValueError for an empty item or two colons."""
        items = []
        for part in text.split(","):
            part = part.strip().lower()
            low, colon, high = part.partition(":")
            if not part or part == ":" or ":" in high:
                raise ValueError(f"'{part}' is not a target, X:, :X or X:Y")
            items.append(TargetRange(low, high, bool(colon)))
        return cls(tuple(items))

    @property
    def ranged(self) -> bool:
        """Whether any item is a range (else: plain names)."""
        return any(item.ranged for item in self.items)

    def unknown(self) -> list[str]:
        """The names archspec does not know (matched exactly)."""
        names = (n for item in self.items for n in (item.low, item.high) if n)
        return list(dict.fromkeys(n for n in names if not known(n)))

    def matches(self, value: str) -> bool:
        """Whether an indexed target satisfies any item."""
        folded = value.lower()
        return any(item.matches(folded) for item in self.items)


def runs_on_constraint(host_name: str) -> TargetConstraint:
    """`runs_on=<host>`: the targets whose builds run on host (`target=:host`)."""
    return TargetConstraint((TargetRange("", host_name.lower(), True),))


def sort_key(name: str) -> tuple[int, str, int, str]:
    """Targets by family (main ones first), then generic to specific, then name."""
    fam = family(name)
    rank = MAIN_FAMILIES.index(fam) if fam in MAIN_FAMILIES else len(MAIN_FAMILIES)
    return (rank, fam or "~", depth(name), name)


def label(name: str) -> str:
    """A target with its generic level: 'zen4 (x86_64_v4)'; generic ones as they are."""
    level = generic(name)
    return f"{name} ({level})" if level and level != name else name


def family_label(name: str) -> str:
    """The family heading a target is listed under: 'x86-64', 'AArch64'... ('other' when
    archspec does not know it)."""
    fam = family(name)
    return FAMILY_LABELS.get(fam or "", fam or "other")
