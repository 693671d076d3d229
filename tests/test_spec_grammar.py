"""Spack's spec grammar beyond the compact forms: spaces after sigils, edge properties,
virtual assignments, propagation sigils, namespaces, anonymous nodes, and what Spack
refuses (each a 400 with the position of the problem).

Expected sets are written from the databases (tests/test_mirrors.py has them by hand) or
from the reference model of the listing pages (tests/reference.py), never from searcher.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.test_mirrors import (
    LIBDWARF_CORE2,
    LIBDWARF_M1,
    LIBELF_CORE2,
    LIBELF_M1,
    RUNTIME,
    WRAPPER,
    found,
    v8_index,  # noqa: F401 (a fixture)
)
from tests.test_spec_syntax import every_id

M1_BUILT_WITH_GCC = {LIBELF_M1, LIBDWARF_M1}


@pytest.mark.parametrize(
    ("q", "hashes"),
    [
        # Edge properties and virtual assignments: who depends on what as which virtual.
        ("^[virtuals=c] gcc", M1_BUILT_WITH_GCC),
        ("^c=gcc", M1_BUILT_WITH_GCC),
        ("^cxx=gcc", {LIBDWARF_M1}),
        ("^c,cxx=gcc", {LIBDWARF_M1}),
        ("^[virtuals=c,cxx] gcc", {LIBDWARF_M1}),
        ("^[virtuals=cxx] gcc-runtime", set()),  # gcc-runtime is no C++ provider
        ("^[virtuals=c] gcc@11:", set()),
        ("^[deptypes=build,link] libelf", {LIBDWARF_CORE2, LIBDWARF_M1}),
        ("^ [virtuals=c]   gcc", M1_BUILT_WITH_GCC),
        # Compilers as Spack 1.x writes them.
        ("%c=gcc", {LIBELF_M1, LIBDWARF_M1, LIBELF_CORE2, LIBDWARF_CORE2}),
        ("%[virtuals=c] gcc", {LIBELF_M1, LIBDWARF_M1, LIBELF_CORE2, LIBDWARF_CORE2}),
        ("%%gcc", {LIBELF_M1, LIBDWARF_M1, LIBELF_CORE2, LIBDWARF_CORE2}),
        ("libelf % gcc @ 10.2.1", {LIBELF_M1, LIBELF_CORE2}),
        ("libelf %gcc @11:", set()),  # the @ after %gcc is the compiler's
        # Spaces between a sigil and its value, propagation sigils, namespaces, *.
        ("libdwarf ^ libelf", {LIBDWARF_CORE2, LIBDWARF_M1}),
        ("libdwarf @ 20130729 ^ libelf @ 0.8.13", {LIBDWARF_CORE2, LIBDWARF_M1}),
        ("^libelf target = core2", set()),  # key=value takes no spaces (as in Spack)
        ("build_system==generic ^gcc-runtime", {LIBELF_M1, LIBDWARF_M1}),
        ("builtin.mock.libdwarf", {LIBDWARF_CORE2, LIBDWARF_M1}),
        ("* ^gcc-runtime", {LIBELF_M1, LIBDWARF_M1}),
        ("^* target=core2", {LIBDWARF_CORE2}),  # any node on core2 below it
        ("gcc-runtime ^ gcc", {RUNTIME}),
        ("compiler-wrapper", {WRAPPER}),
    ],
)
def test_spack_grammar_on_dependencies(v8_index, q, hashes):  # noqa: F811
    assert found(v8_index, q) == hashes


@pytest.mark.parametrize(
    ("q", "match"),
    [
        ("py-keras @ 3.9.2", lambda s: s["package"] == "py-keras" and s["versions"][0] == "3.9.2"),
        ("lhapdf ++ python", lambda s: s["package"] == "lhapdf" and "+python" in s["variants"]),
        ("nccmp ~~ipo", lambda s: s["package"] == "nccmp" and "~ipo" in s["variants"]),
        ("sherpa + mpi ~ cms", lambda s: s["package"] == "sherpa" and "+mpi" in s["variants"]),
        ("acl % gcc @ 7.5.0", lambda s: s["package"] == "acl" and s["compiler"] == "gcc@=7.5.0"),
        ("builtin.acl", lambda s: s["package"] == "acl"),
    ],
)
def test_spaced_forms_on_listing_pages(client, corpus_specs, q, match):
    expected = sorted(f"{s['tag']}/{s['hash']}" for s in corpus_specs if match(s))
    assert expected, "a case that finds nothing proves nothing"
    assert sorted(every_id(client, q)) == expected


@pytest.mark.parametrize(
    ("q", "position", "message"),
    [
        ("acl +shared ~shared", 12, "variant 'shared' of acl is given twice, contradicting"),
        ("acl +shared +shared", 12, "variant 'shared' of acl is repeated"),
        ("acl +shared shared=false", 12, "variant 'shared' of acl is given twice"),
        ("acl@1.2@2.3", 7, "acl has two versions"),
        ("acl@1.2 @2.3", 8, "acl has two versions"),
        ("acl os=ubuntu22.04 os=ubuntu24.04", 19, "acl has two os= values"),
        ("acl arch=linux-ubuntu22.04-x86_64 target=zen4", 34, "acl has two target= values"),
        ("acl@@1.2", 4, "missing value after '@'"),
        ("^[virtuals=mpi openmpi", 1, "'[' of edge properties is not closed"),
        ("^[] openmpi", 1, "empty edge properties"),
        ("^[when=+cuda] cuda", 2, "edge properties are virtuals=... or deptypes=..."),
        ("^[deptypes=compile] cmake", 2, "unknown dependency type 'compile'"),
        ("^", 1, "'^' must be followed by a dependency's name"),
        ("%[virtuals=c]", 13, "'%' must be followed by a compiler name"),
        ("acl ++", 6, "'+' must be followed by a variant name"),
        ("py-keras + ~  backend=torch", 11, "'+' must be followed by a variant name"),
        ("^openmpi +cuda ~cuda", 15, "variant 'cuda' of openmpi is given twice"),
    ],
)
def test_what_spack_refuses_is_a_400_with_the_position(client, q, position, message):
    response = client.get("/api/search?" + urlencode({"q": q}))
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert message in error["message"] and error["position"] == position, error


def test_the_same_constraint_on_two_nodes_is_not_a_contradiction(v8_index):  # noqa: F811
    # build_system=generic on libdwarf and on its libelf: two nodes, both hold it.
    q = "libdwarf build_system=generic ^libelf build_system=generic"
    assert found(v8_index, q) == {LIBDWARF_CORE2, LIBDWARF_M1}
