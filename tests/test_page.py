"""The page as users meet it, in a real Chromium: phones to desktops, light and dark.

Every view is loaded at 390, 1024 and 1366 px in both color schemes: it must not scroll
sideways, axe-core must find no serious or critical violation, and a screenshot of it is
saved under .artifacts/screenshots/ (CI keeps that folder) for people to look at.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from tests import reference

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / ".artifacts" / "screenshots"
WIDTHS = (390, 1024, 1366)
SCHEMES = ("light", "dark")


@pytest.fixture(scope="module")
def server(corpus_index):
    from tests.conftest import LiveServer

    live = LiveServer(corpus_index, workers=1)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def specs(corpus):
    return reference.read_listing(corpus)


def views(specs) -> dict[str, str]:
    spec = next(s for s in specs if s["package"] == "py-jax" and s["tag"] == "develop")
    # acl is in every tag of the corpus: a build of develop and one of another tag.
    acl = next(s for s in specs if s["package"] == "acl" and s["tag"] == "develop")
    other = next(
        s
        for s in specs
        if s["package"] == "acl" and s["tag"] != "develop" and s["hash"] != acl["hash"]
    )
    return {
        "front": "/search?tag=develop",
        "results": "/search?" + urlencode({"q": "py-jax", "tag": "develop", "os": "ubuntu22.04"}),
        "spec": f"/spec/{spec['tag']}/{spec['hash']}",
        "error": "/search?" + urlencode({"q": "py-jax @@1", "tag": "develop"}),
        "empty": "/search?" + urlencode({"q": "py-jax >=0.4.31", "tag": "develop"}),
        "runs-on": "/search?" + urlencode({"runs_on": "neoverse_v2", "tag": "develop"}),
        "stats": "/stats",
        "stats-tag": "/stats?tag=develop",
        "package": "/package/acl",
        "compare-pick": f"/compare?a=develop/{acl['hash']}",
        "compare": "/compare?"
        + urlencode({"a": f"develop/{acl['hash']}", "b": f"{other['tag']}/{other['hash']}"}),
        "compare-tags": "/compare?"
        + urlencode({"package": "acl", "a": "develop-2025-03-23", "b": "develop"}),
    }


def serious_violations(tab) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(tab).response
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def total(tab) -> int:
    return int(tab.locator("#total").inner_text().replace(",", ""))


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
def test_every_view_fits_the_screen_and_passes_axe(new_page, server, specs, width, scheme):
    tab = new_page(width=width, scheme=scheme)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in views(specs).items():
        response = tab.goto(server.url + path)
        assert response.status == (400 if name == "error" else 200), name
        overflow = tab.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} at {width}px scrolls sideways by {overflow}px"
        assert serious_violations(tab) == [], f"{name} at {width}px, {scheme}"
        tab.screenshot(path=SCREENSHOTS / f"{name}-{width}-{scheme}.png", full_page=True)


def test_dark_scheme_follows_the_system(new_page, server):
    colors = {}
    for scheme in SCHEMES:
        tab = new_page(scheme=scheme)
        tab.goto(server.url + "/search?tag=develop")
        colors[scheme] = tab.evaluate(
            "[getComputedStyle(document.body).backgroundColor,"
            " getComputedStyle(document.body).color]"
        )

    def luminance(css: str) -> float:
        r, g, b = (int(x) for x in re.findall(r"\d+", css)[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light_bg, light_fg = (luminance(c) for c in colors["light"])
    dark_bg, dark_fg = (luminance(c) for c in colors["dark"])
    assert light_bg > light_fg and dark_bg < dark_fg
    assert dark_bg < 60 < 200 < light_bg


def test_cards_and_a_drawer_on_phones_a_table_and_a_sidebar_on_wide_screens(new_page, server):
    phone = new_page(width=390)
    phone.goto(server.url + "/search?tag=develop")
    # The column heads are for screen readers only (each card labels its lines).
    assert phone.locator("table.hits thead").bounding_box()["height"] <= 1
    assert phone.locator("tr.hit").first.evaluate("e => getComputedStyle(e).display") == "block"
    drawer = phone.locator("details#filters")
    assert drawer.get_attribute("open") is None
    # The first result is on the first screen, not below every facet.
    assert phone.locator("tr.hit").first.bounding_box()["y"] < 900
    phone.locator("details#filters > summary").click()
    assert phone.locator('section[data-facet="os"]').is_visible()

    wide = new_page(width=1366)
    wide.goto(server.url + "/search?tag=develop")
    assert wide.locator("table.hits thead").is_visible()
    assert wide.locator("details#filters > summary").is_hidden()
    assert wide.locator('section[data-facet="os"]').is_visible()
    # Without script too, the facets show beside the results.
    bare = new_page(width=1366, javascript=False)
    bare.goto(server.url + "/search?tag=develop")
    assert bare.locator('section[data-facet="os"]').is_visible()


def test_builds_of_one_version_are_grouped_with_what_differs(new_page, server, specs):
    tab = new_page()
    tab.goto(server.url + "/search?tag=develop")
    shown = reference.display_order([s for s in specs if s["tag"] == "develop"])[:20]
    runs: list[list[dict]] = []
    for spec in shown:
        if runs and (runs[-1][0]["package"], runs[-1][0]["versions"]) == (
            spec["package"],
            spec["versions"],
        ):
            runs[-1].append(spec)
        else:
            runs.append([spec])
    heads = tab.locator("tr.group-head").all_inner_texts()
    expected = []
    for run in (r for r in runs if len(r) > 1):
        differ = [
            column
            for column, key in [
                ("tag", "tag"),
                ("os", "os"),
                ("target", "target"),
                ("platform", "platform"),
                ("compiler", "compiler"),
                ("variants", "variants"),
                ("stacks", "stacks"),
            ]
            if len({str(s[key]) for s in run}) > 1
        ]
        develop = [s for s in specs if s["tag"] == "develop"]
        total = sum(
            1
            for s in develop
            if (s["package"], s["versions"]) == (run[0]["package"], run[0]["versions"])
        )
        count = f"{len(run)} of {total} builds here" if total > len(run) else f"{len(run)} builds"
        label = f"{run[0]['package']}@{run[0]['versions'][0]} · {count}"
        expected.append(label + (f", differing in {', '.join(differ)}" if differ else ""))
    assert len(heads) == len(expected) > 0
    for head, want in zip(heads, expected, strict=True):
        assert head.startswith(want), (head, want)
    # A differing column is marked in its cells.
    first = next(r for r in runs if len(r) > 1 and len({s["target"] for s in r}) > 1)
    row = tab.locator(f'tr.hit[data-id="develop/{first[0]["hash"]}"]')
    assert "differs" in row.locator('td[data-label="OS / target"]').get_attribute("class")


def test_copy_buttons_copy_the_hash_and_the_commands(new_page, server, specs):
    spec = next(s for s in specs if s["package"] == "abyss" and s["tag"] == "develop")
    tab = new_page()
    tab.goto(server.url + f"/spec/develop/{spec['hash']}")
    buttons = tab.locator("button.copy")
    assert buttons.count() == 3
    hash_button = tab.get_by_role("button", name="Copy the full hash")
    hash_button.focus()
    tab.keyboard.press("Enter")  # keyboard reachable
    assert hash_button.inner_text() == "Copied"
    assert tab.evaluate("navigator.clipboard.readText()") == spec["hash"]
    tab.get_by_role("button", name="Copy the install command").click()
    assert tab.evaluate("navigator.clipboard.readText()") == (
        f"spack install --cache-only abyss@{spec['versions'][0]} /{spec['hash']}"
    )
    tab.get_by_role("button", name="Copy the mirror set-up commands").click()
    assert tab.evaluate("navigator.clipboard.readText()").splitlines() == [
        "spack mirror add develop https://binaries.spack.io/develop",
        "spack buildcache keys --install --trust",
    ]
    expect(tab.locator("button.copied")).to_have_count(0, timeout=5000)  # back after 2 s
    # In the results, each row's button copies that row's full hash.
    tab.goto(server.url + "/search?q=abyss&tag=develop")
    row = tab.locator("tr.hit").first
    row.locator("button.copy").click()
    assert (
        tab.evaluate("navigator.clipboard.readText()") == row.get_attribute("data-id").split("/")[1]
    )
    # Without script, no button that would do nothing.
    bare = new_page(javascript=False)
    bare.goto(server.url + f"/spec/develop/{spec['hash']}")
    assert bare.locator("button.copy").first.is_hidden()


def test_the_tag_is_one_choice(new_page, server, specs):
    tab = new_page()
    tab.goto(server.url + "/search?tag=develop")
    tab.locator('section[data-facet="tag"] a[data-value="v0.22.0"]').click()
    tab.wait_for_url(re.compile(r"tag=v0\.22\.0"))
    assert parse_qsl(urlsplit(tab.url).query) == [("tag", "v0.22.0")]
    assert total(tab) == sum(1 for s in specs if s["tag"] == "v0.22.0")
    tab.locator('section[data-facet="tag"] a', has_text="All tags").click()
    tab.wait_for_url(lambda url: "tag=" not in url)
    assert total(tab) == len(specs)


def test_two_variants_mean_a_build_with_both(new_page, server, specs):
    tab = new_page()
    tab.goto(server.url + "/search?expand=variant")
    wanted = ("backend=jax", "build_system=python_pip")
    for value in wanted:
        tab.locator(f'section[data-facet="variant"] a[data-value="{value}"]').click()
        tab.wait_for_url(re.compile(re.escape(urlencode({"variant": value}))))
    assert total(tab) == sum(1 for s in specs if set(wanted) <= set(s["variants"]))
    assert tab.locator('section[data-facet="variant"] h2').inner_text().endswith("(match all)")


def test_a_facet_value_search_filters_as_you_type_and_without_script(new_page, server, specs):
    tab = new_page()
    tab.goto(server.url + "/search")
    box = tab.locator("#find-variant")
    box.press_sequentially("cuda", delay=30)
    expected = sorted(
        {v for s in specs for v in s["variants"] if "cuda" in v.lower()},
    )
    values = tab.locator('section[data-facet="variant"] li a')
    expect(values).to_have_count(len(expected))
    assert sorted(values.evaluate_all("els => els.map(e => e.dataset.value)")) == expected
    assert box.input_value() == "cuda"  # typing goes on undisturbed
    assert "find_variant=cuda" in tab.url  # a reload shows the same list
    # Picking a value keeps the search (and its list) for the next pick.
    values.first.click()
    tab.wait_for_url(re.compile(r"variant="))
    assert "find_variant=cuda" in tab.url and tab.locator("#find-variant").input_value() == "cuda"

    bare = new_page(javascript=False)
    bare.goto(server.url + "/search")
    bare.locator("#find-variant").fill("cuda")
    bare.locator("#find-variant").press("Enter")
    bare.wait_for_url(re.compile(r"find_variant=cuda"))
    found = bare.locator('section[data-facet="variant"] li a')
    assert sorted(found.evaluate_all("els => els.map(e => e.dataset.value)")) == expected


def values_after(tab) -> list[str]:
    return tab.locator('section[data-facet="variant"] li a').evaluate_all(
        "els => els.map(e => e.dataset.value)"
    )


def test_more_expands_in_place(new_page, server):
    tab = new_page(width=1024)
    tab.goto(server.url + "/search")
    more = tab.locator('section[data-facet="variant"] a.more')
    more.scroll_into_view_if_needed()
    before = tab.evaluate("window.scrollY")
    shown = tab.locator('section[data-facet="variant"] li a').count()
    more.click()
    tab.wait_for_url(re.compile(r"expand=variant"))
    tab.locator('section[data-facet="variant"] a.more', has_text="fewer").wait_for()
    assert tab.locator('section[data-facet="variant"] li a').count() > shown
    assert abs(tab.evaluate("window.scrollY") - before) < 100
    # The focus moves to the first value that was not shown before.
    assert tab.evaluate("document.activeElement.dataset.value") == values_after(tab)[shown]


def test_versions_newest_first_with_their_packages(new_page, server, specs):
    tab = new_page()
    tab.goto(server.url + "/search?q=py-jax py-keras&expand=version")
    rows = tab.locator('section[data-facet="version"] li a')
    versions = rows.evaluate_all("els => els.map(e => e.dataset.value)")
    assert len(versions) > 3
    for newer, older in itertools.pairwise(versions):
        assert reference.compare_versions(newer, older) > 0, (newer, older)
    hits = [s for s in specs if s["package"] in ("py-jax", "py-keras")]
    for version in versions[:5]:
        packages = {s["package"] for s in hits if s["versions"][0] == version}
        text = tab.locator(f'section[data-facet="version"] a[data-value="{version}"]').inner_text()
        assert all(p in text for p in packages), (version, text)


def test_a_bad_query_keeps_every_filter_and_the_sort(new_page, server):
    tab = new_page()
    bad = urlencode([("q", "py-jax @@1"), ("tag", "develop"), ("os", "ubuntu22.04")])
    tab.goto(server.url + f"/search?{bad}&sort=package")
    assert tab.locator("#query-error").is_visible()
    box = tab.get_by_role("combobox", name="Search specs")
    box.fill("py-jax @0.4.31")
    box.press("Enter")
    tab.wait_for_url(re.compile(r"q=py-jax"))
    assert parse_qsl(urlsplit(tab.url).query) == [
        ("q", "py-jax @0.4.31"),
        ("tag", "develop"),
        ("os", "ubuntu22.04"),
        ("sort", "package"),
    ]


def test_the_search_box_keyboard(new_page, server):
    tab = new_page()
    tab.goto(server.url + "/search")
    box = tab.get_by_role("combobox", name="Search specs")
    box.press_sequentially("py-", delay=20)
    options = tab.locator("#suggestions").get_by_role("option")
    options.first.wait_for()
    count = options.count()
    assert count > 1
    box.press("ArrowUp")  # from the box: the last suggestion
    assert options.nth(count - 1).get_attribute("aria-selected") == "true"
    box.press("Escape")  # closes the list, keeps the text
    assert tab.get_by_role("listbox").is_hidden()
    assert box.input_value() == "py-"
    box.press("Escape")
    assert box.input_value() == "py-"


def test_a_valued_variant_is_highlighted_whole(new_page, server):
    tab = new_page()
    tab.goto(server.url + "/search?" + urlencode({"q": "py-keras backend=jax"}))
    marks = tab.locator("tr.hit td.variants mark").all_inner_texts()
    assert marks and set(marks) == {"backend=jax"}


def test_skip_link_focus_and_named_chip_buttons(new_page, server):
    tab = new_page()
    tab.goto(server.url + "/search?tag=develop")
    # The empty front page takes the focus in the box...
    assert tab.evaluate("document.activeElement.id") == "q"
    tab.goto(server.url + "/search?q=abyss&tag=develop")
    # ...no other page does; the first Tab reaches the skip link, which leads to results.
    assert tab.evaluate("document.activeElement.tagName") == "BODY"
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.textContent") == "Skip to results"
    tab.keyboard.press("Enter")
    assert tab.evaluate("document.activeElement.id") == "results"
    tab.keyboard.press("Tab")
    # From the results, one Tab reaches the first chip (the query's), the next the filter's;
    # each says what it removes.
    assert tab.evaluate("document.activeElement.dataset.text") == "abyss"
    assert tab.get_by_role("link", name="Remove from the query: package abyss").count() == 1
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.dataset.value") == "develop"
    assert tab.get_by_role("link", name="Remove the filter tag: develop").count() == 1
    outline = tab.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


def test_zero_results_lead_somewhere(new_page, server, specs):
    tab = new_page(width=390)
    tab.goto(server.url + "/search?" + urlencode({"q": "py-jax >=0.4.31", "tag": "develop"}))
    tab.locator("#syntax-hints a").first.click()
    tab.wait_for_url(re.compile(r"q=py-jax\+%400\.4\.31%3A"))
    assert total(tab) == sum(
        1
        for s in specs
        if s["package"] == "py-jax"
        and s["tag"] == "develop"
        and reference.in_spack_range(s["versions"][0], "0.4.31", None)
    )


def test_a_query_chip_removes_its_part_from_the_box(new_page, server):
    tab = new_page(width=390)
    tab.goto(server.url + "/search?" + urlencode({"q": "py-keras@3.9: backend=jax"}))
    chip = tab.get_by_role("link", name="Remove from the query: variant backend=jax")
    chip.click()
    tab.wait_for_url(lambda url: "backend" not in url)
    assert tab.get_by_role("combobox", name="Search specs").input_value() == "py-keras@3.9:"
    texts = tab.locator("a.chip.query").evaluate_all("els => els.map(e => e.dataset.text)")
    assert texts == ["py-keras", "@3.9:"]
