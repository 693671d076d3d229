"""A deterministic generator of listing pages shaped like the real cache.spack.io ones.

It writes ``<out>/<tag>/<package>/specs.md`` files in the current format (both key orders,
``tarball`` on older tags only), so the demo, tests and benchmarks go through exactly the
same reader as real data. Shape, taken from the real corpus: a rolling ``develop`` tag,
weekly ``develop-YYYY-MM-DD`` snapshots that copy most of develop's specs (same hashes),
and release tags; stacks that fix the platform, OS, target and compiler of their specs;
per-package variant sets with cuda/rocm variants in the GPU stacks. The same seed and sizes
always give byte-identical files.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# (name, versions newest first, build system, variant names) of real Spack packages.
_REAL_PACKAGES = [
    (
        "py-torch",
        ["2.7.1", "2.6.0", "2.5.1", "2.4.1"],
        "python_pip",
        ["cuda", "rocm", "mpi", "distributed", "kineto"],
    ),
    ("py-keras", ["3.9.2", "3.8.0", "3.6.0", "2.14.0"], "python_pip", []),
    ("py-jax", ["0.4.38", "0.4.31", "0.4.28"], "python_pip", ["cuda"]),
    ("py-tensorflow", ["2.18.0", "2.17.0", "2.16.1"], "python_pip", ["cuda", "rocm", "mpi"]),
    ("py-numpy", ["2.2.4", "2.1.3", "1.26.4"], "python_pip", ["blas", "lapack"]),
    ("py-scipy", ["1.15.2", "1.14.1", "1.13.1"], "python_pip", []),
    ("py-pandas", ["2.2.3", "2.1.4"], "python_pip", ["excel", "performance"]),
    ("py-scikit-learn", ["1.6.1", "1.5.2"], "python_pip", []),
    ("py-h5py", ["3.13.0", "3.12.1"], "python_pip", ["mpi"]),
    ("py-mpi4py", ["4.0.3", "3.1.6"], "python_pip", []),
    ("py-particle", ["0.25.3", "0.25.2"], "python_pip", []),
    ("py-hepunits", ["2.3.5", "2.3.2"], "python_pip", []),
    (
        "hdf5",
        ["1.14.6", "1.14.5", "1.12.3"],
        "cmake",
        ["mpi", "shared", "fortran", "cxx", "hl", "szip", "threadsafe"],
    ),
    ("netcdf-c", ["4.9.2", "4.9.0"], "cmake", ["mpi", "shared", "dap", "parallel-netcdf"]),
    (
        "openmpi",
        ["5.0.7", "5.0.5", "4.1.7"],
        "autotools",
        ["cuda", "rocm", "cxx", "java", "memchecker"],
    ),
    ("mpich", ["4.3.0", "4.2.3", "4.1.2"], "autotools", ["cuda", "rocm", "fortran", "hwloc"]),
    (
        "petsc",
        ["3.22.4", "3.21.6", "3.20.6"],
        "generic",
        ["cuda", "rocm", "mpi", "hypre", "superlu-dist", "hdf5"],
    ),
    ("hypre", ["2.32.0", "2.31.0"], "autotools", ["cuda", "rocm", "mpi", "openmp", "shared"]),
    (
        "trilinos",
        ["16.1.0", "16.0.0", "15.1.1"],
        "cmake",
        ["cuda", "mpi", "openmp", "shared", "tpetra"],
    ),
    (
        "kokkos",
        ["4.6.00", "4.5.01", "4.4.01"],
        "cmake",
        ["cuda", "rocm", "openmp", "serial", "shared"],
    ),
    ("cmake", ["3.31.6", "3.30.5", "3.27.9"], "generic", ["doc", "ncurses", "ownlibs"]),
    (
        "gcc",
        ["14.2.0", "13.3.0", "12.4.0", "11.5.0"],
        "autotools",
        ["binutils", "bootstrap", "graphite", "nvptx", "piclibs"],
    ),
    (
        "llvm",
        ["19.1.7", "18.1.8", "17.0.6"],
        "cmake",
        ["cuda", "clang", "flang", "lld", "lldb", "mlir", "python"],
    ),
    (
        "boost",
        ["1.87.0", "1.86.0", "1.83.0"],
        "generic",
        ["mpi", "python", "shared", "multithreaded", "numpy"],
    ),
    ("openblas", ["0.3.29", "0.3.28", "0.3.26"], "makefile", ["shared", "fortran", "ilp64", "pic"]),
    ("fftw", ["3.3.10"], "autotools", ["mpi", "openmp", "shared", "pfft_patches"]),
    ("zlib-ng", ["2.2.4", "2.2.3", "2.1.6"], "cmake", ["compat", "opt", "shared", "pic"]),
    (
        "curl",
        ["8.11.1", "8.10.1", "8.7.1"],
        "autotools",
        ["gssapi", "ldap", "libidn2", "librtmp", "nghttp2"],
    ),
    ("git", ["2.48.1", "2.47.0", "2.45.2"], "autotools", ["man", "nls", "perl", "svn", "tcltk"]),
    ("tmux", ["3.5a", "3.4", "3.3a"], "autotools", ["static", "utf8proc"]),
    ("ripgrep", ["14.1.1", "14.1.0"], "cargo", []),
    ("fzf", ["0.61.0", "0.56.3"], "go", ["vim"]),
    ("direnv", ["2.35.0", "2.34.0"], "makefile", []),
    (
        "root",
        ["6.34.04", "6.32.08", "6.30.06"],
        "cmake",
        ["cuda", "davix", "fftw", "gdml", "minuit", "opengl", "python", "roofit", "x"],
    ),
    ("geant4", ["11.3.1", "11.2.2"], "cmake", ["opengl", "qt", "threads", "vecgeom", "x11"]),
    ("yoda", ["2.0.3", "2.0.2", "1.9.10"], "autotools", ["root"]),
    ("lhapdf", ["6.5.5", "6.5.4"], "autotools", ["python"]),
    (
        "sherpa",
        ["3.0.1", "2.2.15"],
        "cmake",
        [
            "analysis",
            "blackhat",
            "gzip",
            "hepmc3",
            "lhapdf",
            "mpi",
            "openloops",
            "python",
            "recola",
            "rivet",
            "root",
            "ufo",
        ],
    ),
    (
        "gromacs",
        ["2025.1", "2024.5", "2023.5"],
        "cmake",
        ["cuda", "mpi", "openmp", "plumed", "shared"],
    ),
    (
        "lammps",
        ["20240829.2", "20240207.1"],
        "cmake",
        ["cuda", "rocm", "kokkos", "mpi", "openmp", "python"],
    ),
    (
        "paraview",
        ["5.13.3", "5.12.1"],
        "cmake",
        ["cuda", "mpi", "python", "qt", "osmesa", "shared"],
    ),
    ("visit", ["3.4.2", "3.4.1"], "cmake", ["mpi", "python", "gui", "osmesa"]),
    ("cuda", ["12.8.0", "12.6.3", "12.4.1"], "generic", ["allow-unsupported-compilers", "dev"]),
    ("hip", ["6.3.2", "6.2.4"], "cmake", ["cuda", "rocm"]),
    ("magma", ["2.9.0", "2.8.0"], "cmake", ["cuda", "rocm", "fortran", "shared"]),
    ("slepc", ["3.22.2", "3.21.2"], "generic", ["arpack", "blopex", "cuda", "rocm"]),
    ("sundials", ["7.2.1", "7.1.1", "6.7.0"], "cmake", ["cuda", "rocm", "mpi", "openmp", "shared"]),
    ("superlu-dist", ["9.1.0", "8.2.1"], "cmake", ["cuda", "rocm", "openmp", "shared"]),
    ("tau", ["2.34.1", "2.33.2"], "generic", ["cuda", "rocm", "mpi", "openmp", "python"]),
    ("papi", ["7.1.0", "7.0.1"], "autotools", ["cuda", "rocm", "shared", "static_tools"]),
]
_SYLLABLES = [
    "ar",
    "bo",
    "cal",
    "da",
    "el",
    "fi",
    "gor",
    "hy",
    "in",
    "jo",
    "ka",
    "lu",
    "mer",
    "no",
    "op",
    "pra",
    "qui",
    "ro",
    "sa",
    "ti",
    "ul",
    "vex",
    "wi",
    "xo",
    "yu",
    "zen",
]
_LANG_PREFIXES = ["", "", "", "py-", "py-", "r-", "perl-", "lib", "rust-", "julia-"]
_BUILD_SYSTEMS = ["cmake", "autotools", "python_pip", "makefile", "generic", "meson", "cargo"]
_EXTRA_VARIANTS = [
    "shared",
    "static",
    "pic",
    "openmp",
    "mpi",
    "python",
    "ipo",
    "examples",
    "docs",
    "tests",
    "zlib",
    "zstd",
    "lz4",
    "ssl",
    "threads",
    "fortran",
]


@dataclass(frozen=True)
class _Stack:
    name: str
    platform: str
    os: str
    target: str
    compilers: tuple[str, ...]
    gpu: str = ""
    weight: int = 10


# Stacks fix where their specs are built; weights give real-looking facet distributions.
_STACKS = [
    _Stack("e4s", "linux", "ubuntu22.04", "x86_64_v3", ("gcc@11.4.0", "gcc@=11.4.0"), weight=30),
    _Stack("e4s-neoverse-v2", "linux", "ubuntu22.04", "neoverse_v2", ("gcc@11.4.0",), weight=8),
    _Stack("e4s-neoverse_v1", "linux", "ubuntu22.04", "neoverse_v1", ("gcc@11.4.0",), weight=6),
    _Stack(
        "e4s-oneapi",
        "linux",
        "ubuntu22.04",
        "x86_64_v3",
        ("oneapi@=2024.2.1", "oneapi@=2023.0.0"),
        weight=6,
    ),
    _Stack("e4s-cray-rhel", "linux", "rhel8", "zen4", ("cce@=15.0.1",), weight=3),
    _Stack("e4s-cray-sles", "linux", "sle_hpc15", "zen4", ("cce@=15.0.1",), weight=2),
    _Stack("e4s-power", "linux", "ubuntu20.04", "ppc64le", ("gcc@=9.4.0",), weight=4),
    _Stack("e4s-rocm-external", "linux", "ubuntu22.04", "x86_64_v3", ("gcc@11.4.0",), "rocm", 5),
    _Stack("e4s-cuda", "linux", "ubuntu22.04", "x86_64_v3", ("gcc@11.4.0",), "cuda", 6),
    _Stack("ml-linux-x86_64-cpu", "linux", "ubuntu22.04", "x86_64_v3", ("gcc@11.4.0",), weight=6),
    _Stack("ml-linux-x86_64-cuda", "linux", "ubuntu22.04", "x86_64_v3", ("gcc@11.4.0",), "cuda", 6),
    _Stack("ml-linux-x86_64-rocm", "linux", "ubuntu22.04", "x86_64_v3", ("gcc@11.4.0",), "rocm", 4),
    _Stack("ml-linux-aarch64-cpu", "linux", "ubuntu24.04", "aarch64", ("gcc@13.3.0",), weight=5),
    _Stack("ml-linux-aarch64-cuda", "linux", "ubuntu24.04", "aarch64", ("gcc@13.3.0",), "cuda", 5),
    _Stack(
        "ml-darwin-aarch64-mps", "darwin", "sequoia", "aarch64", ("apple-clang@16.0.0",), weight=3
    ),
    _Stack(
        "developer-tools-x86_64_v3-linux-gnu",
        "linux",
        "ubuntu24.04",
        "x86_64_v3",
        ("gcc@13.3.0",),
        weight=5,
    ),
    _Stack(
        "developer-tools-aarch64-linux-gnu",
        "linux",
        "ubuntu24.04",
        "aarch64",
        ("gcc@13.3.0",),
        weight=4,
    ),
    _Stack(
        "developer-tools-darwin", "darwin", "sequoia", "aarch64", ("apple-clang@16.0.0",), weight=3
    ),
    _Stack(
        "developer-tools-manylinux2014", "linux", "centos7", "x86_64_v3", ("gcc@=10.2.1",), weight=3
    ),
    _Stack("aws-pcluster-neoverse_v1", "linux", "amzn2", "neoverse_v1", ("gcc@=10.5.0",), weight=4),
    _Stack("aws-ahug-aarch64", "linux", "amzn2", "aarch64", ("gcc@=7.3.1",), weight=3),
    _Stack("hep", "linux", "ubuntu24.04", "x86_64_v3", ("gcc@13.3.0",), weight=10),
    _Stack("data-vis-sdk", "linux", "ubuntu22.04", "x86_64_v3", ("gcc@11.4.0",), weight=4),
    _Stack(
        "windows-vis", "windows", "windows10.0.20348", "x86_64", ("msvc@=19.40.33811",), weight=1
    ),
]
_SNAPSHOT_KEEP = 0.85  # share of develop's specs a weekly snapshot still holds
_LATEST_SNAPSHOT = dt.date(2025, 11, 16)


@dataclass(frozen=True)
class _Package:
    name: str
    versions: tuple[str, ...]
    build_system: str
    variants: tuple[str, ...]


@dataclass
class GenerateReport:
    """What generate() wrote."""

    tags: list[str]
    files: int
    specs: int


def tag_names(count: int) -> list[str]:
    """develop, then weekly snapshots newest first, with a release every eighth tag."""
    tags = ["develop"]
    week, release = 0, 0
    while len(tags) < count:
        if len(tags) % 8 == 7:
            tags.append(f"v0.{23 - release}.0")
            release += 1
        else:
            tags.append(f"develop-{_LATEST_SNAPSHOT - dt.timedelta(weeks=week)}")
            week += 1
    return tags


def generate(
    out: Path, *, specs: int = 20_000, tags: int = 4, seed: int = 0, layout: str = "pages"
) -> GenerateReport:
    """Write about `specs` specs spread over `tags` tags under out/; deterministic.

    layout "pages": listing pages; "mirror": the same specs as a tree of Spack binary
    mirrors (see _write_mirrors), with dependencies."""
    rng = random.Random(seed)
    tag_list = tag_names(max(1, tags))
    per_tag = max(1, specs // len(tag_list))
    packages = _packages(rng, max(len(_REAL_PACKAGES), per_tag // 40))
    develop = _unique(per_tag, lambda: _spec(rng, packages, seed, "develop"))

    pages: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    total = 0
    for tag in tag_list:
        if tag == "develop":
            tag_specs = develop
        elif tag.startswith("develop-"):
            # A snapshot keeps most of develop (same hashes) and adds its own older builds.
            tag_specs = [
                s if rng.random() < _SNAPSHOT_KEEP else _spec(rng, packages, seed, tag, older=True)
                for s in develop
            ]
        else:
            tag_specs = _unique(per_tag, functools.partial(_spec, rng, packages, seed, tag, True))
        seen = set()
        for spec in tag_specs:
            # A snapshot's own build can coincide with one it kept from develop.
            if spec["hash"] not in seen:
                seen.add(spec["hash"])
                pages[(tag, spec["_package"])].append(spec)
                total += 1

    out = Path(out)
    if layout == "mirror":
        placed = _write_mirrors(out, tag_list, pages, seed)
        return GenerateReport(tags=tag_list, files=placed.mirrors, specs=placed.specs)
    for (tag, package), page_specs in sorted(pages.items()):
        folder = out / tag / package
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "specs.md").write_text(_page(tag, package, page_specs), encoding="utf-8")
    return GenerateReport(tags=tag_list, files=len(pages), specs=total)


def _unique(count: int, make: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    """count specs with distinct hashes (popular packages collide on identical builds)."""
    specs: dict[str, dict[str, Any]] = {}
    attempts = 0
    while len(specs) < count and attempts < count * 20:
        spec = make()
        specs.setdefault(spec["hash"], spec)
        attempts += 1
    return list(specs.values())


def _packages(rng: random.Random, count: int) -> list[_Package]:
    packages = [_Package(n, tuple(v), b, tuple(var)) for n, v, b, var in _REAL_PACKAGES]
    names = {p.name for p in packages}
    while len(packages) < count:
        name = rng.choice(_LANG_PREFIXES) + "".join(
            rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))
        )
        if name in names:
            name = f"{name}{rng.randint(2, 99)}"
            if name in names:
                continue
        names.add(name)
        major = rng.randint(0, 12)
        versions = tuple(
            f"{major}.{m}.{rng.randint(0, 9)}"
            for m in sorted(rng.sample(range(30), rng.randint(1, 4)), reverse=True)
        )
        variants = tuple(rng.sample(_EXTRA_VARIANTS, rng.randint(0, 5)))
        build = "python_pip" if name.startswith("py-") else rng.choice(_BUILD_SYSTEMS)
        packages.append(_Package(name, versions, build, variants))
    return packages


def _spec(
    rng: random.Random, packages: list[_Package], seed: int, tag: str, older: bool = False
) -> dict[str, Any]:
    # A few popular packages get many builds, as py-keras and py-jax do in the listing.
    package = packages[min(int(rng.paretovariate(1.1)) - 1, len(packages) - 1)]
    if rng.random() < 0.7:
        package = rng.choice(packages)
    stack = rng.choices(_STACKS, weights=[s.weight for s in _STACKS])[0]
    versions = package.versions[1:] if older and len(package.versions) > 1 else package.versions
    version = versions[0] if rng.random() < 0.6 else rng.choice(versions)
    if older or stack.platform != "linux":
        compiler = rng.choice(stack.compilers)
    else:
        compiler = "none" if rng.random() < 0.6 else rng.choice(stack.compilers)
    variants = [f"build_system={package.build_system}"]
    if package.build_system == "cmake":
        variants += ["build_type=Release", "generator=" + rng.choice(["make", "ninja"]), "~ipo"]
    for name in package.variants:
        if name in ("cuda", "rocm"):
            on = stack.gpu == name
            variants.append(("+" if on else "~") + name)
            if on and name == "cuda":
                variants.append(f"cuda_arch={rng.choice(['80', '90', '70'])}")
            if on and name == "rocm":
                variants.append(f"amdgpu_target={rng.choice(['gfx90a', 'gfx942'])}")
        else:
            variants.append(("+" if rng.random() < 0.55 else "~") + name)
    if rng.random() < 0.05:
        variants.append(f"patches={_hash(rng.random(), 7)}")
    stacks = sorted({stack.name, "root"} if rng.random() < 0.93 else {stack.name})
    if rng.random() < 0.01:
        stacks = []
    identity = "|".join(
        [package.name, version, compiler, stack.os, stack.target, *sorted(variants), str(seed)]
    )
    # Identical builds share a hash across tags (and so the same spec page everywhere).
    digest = _hash(identity + ("" if tag.startswith("develop") else tag), 32)
    return {
        "_package": package.name,
        "hash": digest,
        "compiler": compiler,
        "versions": [version],
        "os": stack.os,
        "platform": stack.platform,
        "target": stack.target,
        "variants": sorted(variants, key=_variant_key),
        "stacks": stacks,
        "size": "-",
    }


def _variant_key(variant: str) -> tuple[str, str]:
    """Variants sort by name, as the real pages (and Spack's records) order them."""
    return variant.lstrip("+~").split("=")[0].rstrip(":"), variant


def _hash(value: object, length: int) -> str:
    raw = hashlib.sha256(str(value).encode()).digest()
    return base64.b32encode(raw).decode().lower()[:length]


def _page(tag: str, package: str, specs: list[dict[str, Any]]) -> str:
    """One listing page; release tags use the older hash-first layout with tarballs."""
    release = not tag.startswith("develop")
    details = []
    for spec in specs:
        entry = {k: v for k, v in spec.items() if k != "_package"}
        if release:
            compiler_dir = entry["compiler"].replace("@=", "-").replace("@", "-")
            arch = f"{entry['platform']}-{entry['os']}-{entry['target']}"
            name = f"{package}-{entry['versions'][0]}"
            entry["tarball"] = (
                f"https://binaries.spack.io/{tag}/build_cache/{arch}/{compiler_dir}/{name}/"
                f"{arch}-{compiler_dir}-{name}-{entry['hash']}.spack"
            )
            order = [
                "hash",
                "compiler",
                "versions",
                "os",
                "platform",
                "target",
                "variants",
                "stacks",
                "size",
                "tarball",
            ]
            entry = {k: entry[k] for k in order}
        else:
            entry = dict(sorted(entry.items()))
        details.append(entry)
    by_stack: dict[str, int] = defaultdict(int)
    for spec in specs:
        for stack in spec["stacks"]:
            by_stack[stack] += 1
    meta = {
        "compilers": sorted({s["compiler"] for s in specs}),
        "num_specs": len(specs),
        "num_specs_by_stack": dict(sorted(by_stack.items())),
        "oss": sorted({s["os"] for s in specs}),
        "platforms": sorted({s["platform"] for s in specs}),
        "stacks": sorted(by_stack),
        "targets": sorted({s["target"] for s in specs}),
        "versions": sorted({s["versions"][0] for s in specs}),
    }
    # Real pages end with '---' and sometimes no final newline; so do half of ours.
    ending = "---\n" if len(package) % 2 else "---"
    return (
        f'---\ntitle: "{package}"\nlayout: cache\ncategories: [package, {tag}]\n'
        f"meta: {json.dumps(meta)}\nspec_details: {json.dumps(details)}\n{ending}"
    )


# -- the same listing as binary mirrors -------------------------------------------------

_MPI = ("openmpi", "mpich")
_DEPTYPES = [(["build", "link"], 70), (["build", "run"], 10), (["link"], 10), (["build"], 10)]


@dataclass
class _Placed:
    mirrors: int = 0
    specs: int = 0


def _write_mirrors(
    out: Path, tags: list[str], pages: dict[tuple[str, str], list[dict[str, Any]]], seed: int
) -> _Placed:
    """Each tag as the public bucket lays it out: ``<tag>/`` its root mirror, holding the
    specs listed with the root stack, and ``<tag>/<stack>/`` one mirror per stack. Tags
    alternate between the v3 layout (develop first) and v2. Records are Spack database
    v8 records with target objects and dependencies: a spec depends on earlier specs of
    its stack (libraries, then applications: DAGs of ~10-40 nodes), on its compiler as
    the external build dependency providing c and cxx when the listing shows a compiler
    without '@=' (with '@=', it is the annotation of a converted record), and MPI
    providers are depended on as the mpi virtual. A spec listed with no stack is in no
    mirror, so it is not written."""
    placed = _Placed()
    by_tag: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (tag, package), specs in sorted(pages.items()):
        for spec in specs:
            by_tag[tag].append({**spec, "_package": package})
    for number, tag in enumerate(tags):
        rng = random.Random(f"{seed}/{tag}/dependencies")
        records: dict[str, dict[str, Any]] = {}
        homes: dict[str, list[str]] = defaultdict(list)  # stack -> hashes, in order
        for spec in by_tag[tag]:
            home = [s for s in spec["stacks"] if s != "root"]
            if not home:
                continue  # no stack, or only root (not generated): in no stack mirror
            homes[home[0]].append(spec["hash"])
            records[spec["hash"]] = _record(spec)
        externals: dict[str, dict[str, Any]] = {}
        for hashes in homes.values():
            _link(rng, hashes, records, externals)
        layout = "v3" if number % 2 == 0 else "v2"
        root = [h for h, r in records.items() if "root" in r["_stacks"]]
        mirrors = {"root": root, **homes}
        for label, hashes in sorted(mirrors.items()):
            folder = out / tag if label == "root" else out / tag / label
            database = _database(hashes, records, externals)
            _write_index(folder, layout, database)
            placed.mirrors += 1
        placed.specs += len(records)
    return placed


def _record(spec: dict[str, Any]) -> dict[str, Any]:
    parameters: dict[str, Any] = {"cflags": [], "cxxflags": [], "ldflags": []}
    for variant in spec["variants"]:
        if variant[0] in "+~":
            parameters[variant[1:]] = variant[0] == "+"
            continue
        key, _, value = variant.partition("=")
        key = key.rstrip(":")
        multi = key in ("patches", "cuda_arch", "amdgpu_target")
        parameters[key] = value.split(",") if multi else value
    annotations: dict[str, Any] = {"original_specfile_version": 5}
    if "@=" in spec["compiler"]:
        annotations["compiler"] = spec["compiler"]
    node = {
        "name": spec["_package"],
        "version": spec["versions"][0],
        "arch": {
            "platform": spec["platform"],
            "platform_os": spec["os"],
            "target": {
                "name": spec["target"],
                "vendor": "generic",
                "features": ["avx", "avx2", "sse4_2"] if "x86" in spec["target"] else ["neon"],
                "generation": 0,
                "parents": [],
            },
        },
        "namespace": "builtin",
        "parameters": dict(sorted(parameters.items())),
        "dependencies": [],
        "annotations": annotations,
        "hash": spec["hash"],
    }
    return {
        "spec": node,
        "ref_count": 0,
        "in_buildcache": True,
        "_stacks": spec["stacks"],
        "_compiler": spec["compiler"],
    }


def _link(
    rng: random.Random,
    hashes: list[str],
    records: dict[str, dict[str, Any]],
    externals: dict[str, dict[str, Any]],
) -> None:
    """Dependencies within one stack, in four levels by position: leaves (the first
    tenth), then libraries on leaves, on both, and applications on all of them (half)."""
    n = len(hashes)
    bounds = [max(1, n // 10), max(1, n // 4), max(1, n // 2)]
    fan_out = [(0, 0), (1, 4), (2, 8), (4, 16)]
    for i, hash_ in enumerate(hashes):
        node = records[hash_]["spec"]
        level = sum(i >= b for b in bounds)
        pool = hashes[: bounds[level - 1]] if level else []
        count = rng.randint(*fan_out[level])
        deps = []
        for dep_hash in dict.fromkeys(rng.sample(pool, min(count, len(pool)))):
            dep = records[dep_hash]["spec"]
            deptypes = rng.choices([d for d, _ in _DEPTYPES], [w for _, w in _DEPTYPES])[0]
            virtuals = ["mpi"] if dep["name"] in _MPI else []
            deps.append(_edge(dep["name"], dep_hash, deptypes, virtuals))
        compiler = records[hash_]["_compiler"]
        if compiler != "none" and "@=" not in compiler:
            name, _, version = compiler.partition("@")
            arch = node["arch"]
            key = _hash(f"{compiler}/{arch['platform_os']}/{arch['target']['name']}", 32)
            externals.setdefault(key, _external(name, version, key, arch))
            deps.append(_edge(name, key, ["build"], ["c", "cxx"]))
        node["dependencies"] = sorted(deps, key=lambda d: d["name"])


def _edge(name: str, hash_: str, deptypes: list[str], virtuals: list[str]) -> dict[str, Any]:
    return {"name": name, "hash": hash_, "parameters": {"deptypes": deptypes, "virtuals": virtuals}}


def _external(name: str, version: str, hash_: str, arch: dict[str, Any]) -> dict[str, Any]:
    node = {
        "name": name,
        "version": version,
        "arch": {**arch, "target": arch["target"]["name"].split("_")[0]},
        "namespace": "builtin",
        "parameters": {"languages": ["c", "c++", "fortran"]},
        "external": {"path": "/usr", "module": None},
        "annotations": {"original_specfile_version": 5},
        "hash": hash_,
    }
    return {"spec": node, "ref_count": 1, "in_buildcache": False}


def _database(
    hashes: list[str], records: dict[str, dict[str, Any]], externals: dict[str, dict[str, Any]]
) -> bytes:
    """A mirror's database: its specs in the cache, and every record they depend on."""
    held = set(hashes)
    installs: dict[str, dict[str, Any]] = {}
    todo = list(hashes)
    while todo:
        hash_ = todo.pop()
        if hash_ in installs:
            continue
        if hash_ in externals:
            installs[hash_] = externals[hash_]
            continue
        record = records[hash_]
        installs[hash_] = {
            "spec": record["spec"],
            "ref_count": record["ref_count"],
            "in_buildcache": hash_ in held,
        }
        todo.extend(d["hash"] for d in record["spec"]["dependencies"])
    body = {"database": {"version": "8", "installs": dict(sorted(installs.items()))}}
    return json.dumps(body, separators=(",", ":")).encode()


def _write_index(folder: Path, layout: str, database: bytes) -> None:
    digest = hashlib.sha256(database).hexdigest()
    if layout == "v2":
        (folder / "build_cache").mkdir(parents=True, exist_ok=True)
        (folder / "build_cache" / "index.json").write_bytes(database)
        (folder / "build_cache" / "index.json.hash").write_text(digest)
        return
    blob = folder / "blobs" / "sha256" / digest[:2] / digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(database)
    manifest = folder / "v3" / "manifests" / "index"
    manifest.mkdir(parents=True, exist_ok=True)
    entry = {
        "contentLength": len(database),
        "mediaType": "application/vnd.spack.db.v8+json",
        "compression": "none",
        "checksumAlgorithm": "sha256",
        "checksum": digest,
    }
    (manifest / "index.manifest.json").write_text(json.dumps({"version": 3, "data": [entry]}))
