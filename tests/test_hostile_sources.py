"""Hostile listing pages: every one is reported by path and skipped, the rest is indexed,
and a reindex over them stays fast and small (it runs in a child process whose peak
memory is measured, and whose address space is capped so a regression fails instead of
swapping)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import cli
from tests.pages import page, spec, summary, write

MEMORY_BOUND = 1024  # MB of peak RSS for a reindex of hostile pages (README)


def bounded_reindex(source: Path, index: Path, *args: str) -> tuple[int, str, str, float]:
    """`searcher reindex` in a child: (exit code, stdout, stderr, peak RSS in MB)."""
    out, err = index.parent / "reindex.out", index.parent / "reindex.err"

    def limit() -> None:  # in the child: a runaway fails with MemoryError, not the machine
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))

    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "searcher",
                "reindex",
                "--source",
                source,
                "--index",
                index,
                *args,
            ],
            stdout=stdout,
            stderr=stderr,
            preexec_fn=limit,
        )
        timer = threading.Timer(300, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss of a reaped child covers it and the workers it reaped, in KB.
    return process.returncode, out.read_text(), err.read_text(), usage.ru_maxrss / 1024


def good(source: Path) -> Path:
    """One good page beside the hostile ones: it must always be indexed."""
    return write(source, "t/good/specs.md", page("t", "good", [spec("a" * 32), spec("b" * 32)]))


def problems(stderr: str, path: Path) -> list[str]:
    """The lines of a reindex's stderr reporting a path."""
    return [line for line in stderr.splitlines() if line.startswith(f"{path}: ")]


def searchable(index: Path) -> int:
    return json.loads(cli("search", "", "--index", index, "--json").stdout)["total"]


ALIAS_BOMB = (
    "---\n"
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
    "{field}: *i\n"
    "categories: [package, t]\n"
    "spec_details: []\n"
    "---\n"
)

HOSTILE_PAGES = {
    # An 800-byte page whose aliases expand to gigabytes: as the title (quoted in the
    # error message), or as the versions of a spec (read without the JSON fast path).
    "alias-title": (ALIAS_BOMB.replace("{field}", "title"), "aliases are not allowed"),
    "alias-versions": (
        ALIAS_BOMB.replace("{field}: *i\n", 'title: "alias-versions"\n').replace(
            "spec_details: []",
            'spec_details: [{hash: "' + "c" * 32 + '", versions: *i, compiler: none, '
            "os: x, platform: linux, target: x, variants: [], stacks: []}]",
        ),
        "aliases are not allowed",
    ),
    # 1,000 nested lists: too deep for Python's json (RecursionError), then refused by
    # the YAML shape check; in spec_details and in the (unused) meta.
    "deep-json": (
        '---\ntitle: "deep-json"\ncategories: [package, t]\n'
        f"spec_details: {'[' * 1000}{']' * 1000}\n---\n",
        "nested deeper than 16 levels",
    ),
    # 50,000 levels of YAML flow nesting crashed libyaml's composer (SIGSEGV).
    "deep-yaml": (
        f'---\ntitle: "deep-yaml"\nlayout: {"[" * 50_000}\ncategories: [package, t]\n'
        "spec_details: []\n---\n",
        "nested deeper than 16 levels",
    ),
    # Many small problems: each spec entry is an integer.
    "many-integers": (
        '---\ntitle: "many-integers"\ncategories: [package, t]\n'
        f"spec_details: [{','.join(['1'] * 1_000_000)}]\n---\n",
        "spec_details[0]: expected an object, got int",
    ),
    "huge-value": (
        page("t", "huge-value", [spec("d" * 32, variants=["x" * 100_000])]),
        "is longer than 4096 characters",
    ),
}


def test_hostile_pages_are_reported_and_skipped_in_bounded_time_and_memory(tmp_path):
    source = tmp_path / "src"
    good(source)
    # The page's meta summary is not used, so not read: 1,000 levels deep does no harm.
    deep_meta = page("t", "deep-meta", [spec("9" * 32)])
    deep_meta = deep_meta.replace("meta: {}", "meta: " + '{"a": ' * 1000 + "1" + "}" * 1000)
    write(source, "t/deep-meta/specs.md", deep_meta)
    paths = {
        name: write(source, f"t/{name}/specs.md", text) for name, (text, _) in HOSTILE_PAGES.items()
    }
    # A page over the size limit (16 MB), made of integers.
    too_big = write(source, "t/too-big/specs.md", "")
    with open(too_big, "w") as out:
        out.write('---\ntitle: "too-big"\ncategories: [package, t]\nspec_details: [')
        out.write("1," * (9 * 2**20))
        out.write("1]\n---\n")

    code, stdout, stderr, peak = bounded_reindex(source, tmp_path / "ix")

    assert code == 0, stderr[-2000:]
    for name, (_, reason) in HOSTILE_PAGES.items():
        lines = problems(stderr, paths[name])
        assert lines and reason in lines[0], (name, lines[:3])
    assert problems(stderr, too_big) == [
        f"{too_big}: file is larger than the 16 MB limit for a listing page (18.0 MB)"
    ]
    # One million bad entries: twenty described, the rest counted in one line.
    many = problems(stderr, paths["many-integers"])
    assert len(many) == 21
    assert many[-1] == f"{paths['many-integers']}: ... and 999980 more specs skipped in this page"
    files, specs, files_skipped, specs_skipped = summary(stdout)
    assert (files, specs) == (len(HOSTILE_PAGES) + 3, 3)
    assert specs_skipped == 1_000_000 + 1  # the integers and the huge value
    assert files_skipped == len(HOSTILE_PAGES) + 1 - 2  # all but many-integers and huge-value
    assert max(len(line) for line in stderr.splitlines()) < 500
    assert peak < MEMORY_BOUND, f"peak RSS {peak:.0f} MB"
    assert searchable(tmp_path / "ix") == 3
    # What the index keeps of the problems is as bounded as what was printed.
    (generation,) = (tmp_path / "ix").glob("gen-*")
    assert (generation / "meta.json").stat().st_size < 50_000


def test_files_that_are_not_pages_are_reported_not_opened(tmp_path):
    source = tmp_path / "src"
    outside = tmp_path / "outside"
    good(source)
    stolen = write(outside, "t/stolen/specs.md", page("t", "stolen", [spec("e" * 32)]))
    inside = write(source, "t/real/specs.md", page("t", "linked", [spec("f" * 32)]))
    links = {
        "dev-zero": ("/dev/zero", "symbolic link to /dev/zero leaves the source tree"),
        "outside": (stolen, f"symbolic link to {os.path.realpath(stolen)} leaves the source"),
        "dangling": (tmp_path / "nowhere", "broken symbolic link"),
        "loop": (source / "t" / "loop" / "specs.md", "Too many levels of symbolic links"),
    }
    paths = {}
    for name, (target, _) in links.items():
        (source / "t" / name).mkdir(parents=True)
        paths[name] = source / "t" / name / "specs.md"
        paths[name].symlink_to(target)
    (source / "t" / "linked").mkdir()
    (source / "t" / "linked" / "specs.md").symlink_to(inside)  # inside the tree: followed
    (source / "t" / "fifo").mkdir()
    fifo = source / "t" / "fifo" / "specs.md"
    os.mkfifo(fifo)
    (source / "t" / "folder" / "specs.md").mkdir(parents=True)
    (source / "u").symlink_to(outside / "t")  # a whole tag folder leading out

    code, stdout, stderr, _ = bounded_reindex(source, tmp_path / "ix")

    assert code == 0, stderr
    for name, (_, reason) in links.items():
        assert len(problems(stderr, paths[name])) == 1, name
        assert reason in problems(stderr, paths[name])[0], (name, stderr)
    assert problems(stderr, fifo) == [f"{fifo}: not a regular file (a named pipe)"]
    folder = source / "t" / "folder" / "specs.md"
    assert problems(stderr, folder) == [f"{folder}: not a regular file (a directory)"]
    assert problems(stderr, source / "u") == [
        f"{source / 'u'}: symbolic link to {os.path.realpath(outside / 't')} leaves the source "
        "tree, not followed"
    ]
    # real/ and linked/ are the same page: its spec is indexed once, the copy reported.
    assert summary(stdout)[:2] == (10, 3)
    found = json.loads(cli("search", "", "--index", tmp_path / "ix", "--json").stdout)
    assert sorted(h["hash"][0] for h in found["hits"]) == ["a", "b", "f"]


def test_a_folder_name_cannot_forge_a_line_of_output(tmp_path):
    source = tmp_path / "src"
    good(source)
    forged = "x\nerror: everything is fine\x1b[2J"
    path = write(source, f"t/{forged}/specs.md", "not a page")
    result = cli("reindex", "--source", source, "--index", tmp_path / "ix")
    assert result.exit_code == 0
    escaped = str(path).replace("\n", "\\n").replace("\x1b", "\\x1b")
    assert sorted(result.stderr.splitlines()) == [
        f"{escaped}: no front matter (the file must start with a '---' line)",
        "indexed 2/2 files",
    ]


def test_pages_changing_during_a_reindex_never_crash_it(tmp_path):
    """Pages deleted and rewritten while reindexes run: each run ends with a summary."""
    source = tmp_path / "src"
    good(source)
    churned = [write(source, f"t/p{i}/specs.md", page("t", f"p{i}", [])) for i in range(1000)]
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            for path in churned:
                if path.exists():
                    path.unlink()
                else:
                    path.write_text(page("t", path.parent.name, []))

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(10):
            result = cli("reindex", "--source", source, "--index", tmp_path / "ix", "--full")
            assert result.exit_code == 0, result.output
            assert summary(result.stdout)[1] == 2
    finally:
        stop.set()
        thread.join()


def test_a_page_at_the_size_limit_is_read(tmp_path):
    """The limit is on the file, not lower: a page of exactly 16 MB is indexed."""
    source = tmp_path / "src"
    text = page("t", "big", [spec("a" * 32)])
    padding = 16 * 2**20 - len(text.encode())
    text = text.replace("spec_details: [", "spec_details: [" + " " * padding)
    path = write(source, "t/big/specs.md", text)
    assert path.stat().st_size == 16 * 2**20
    result = cli("reindex", "--source", source, "--index", tmp_path / "ix")
    assert result.exit_code == 0, result.output
    assert summary(result.stdout) == (1, 1, 0, 0)


def test_a_value_that_is_not_text_is_reported_and_the_rest_exported(tmp_path):
    # "\ud800" in JSON or YAML gives a lone surrogate: a str that UTF-8 cannot encode.
    source = tmp_path / "src"
    text = page("t", "zlib", [spec("a" * 32, variants=["+ok"]), spec("b" * 32, variants=["+x"])])
    path = write(source, "t/zlib/specs.md", text.replace('"+x"', '"+x\\ud800"'))
    index = tmp_path / "ix"
    result = cli("reindex", "--source", source, "--index", index)
    assert result.exit_code == 0, result.output
    assert problems(result.stderr, path) == [
        f"{path}: spec_details[1]: value '+x\\ud800' holds a lone surrogate: not text "
        "(YAML's \\ud800)"
    ]
    assert searchable(index) == 1
    for kind in ("csv", "ndjson"):
        exported = cli("search", "zlib", "--index", index, "--format", kind)
        assert exported.exit_code == 0 and "a" * 32 in exported.stdout
