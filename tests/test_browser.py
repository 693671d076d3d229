"""The search page in a real browser: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests import reference

pytestmark = pytest.mark.browser


def shown_count(page, facet: str, value: str) -> int:
    link = page.locator(f'section[data-facet="{facet}"] a[data-value="{value}"]')
    return int(re.match(r"[\d,]+", link.locator(".count").inner_text())[0].replace(",", ""))


def test_type_a_query_and_drill_down_with_two_facet_values(
    page, generated_index, generated_source, live_server_for
):
    server = live_server_for(generated_index)
    specs = reference.read_listing(generated_source)
    page.goto(server.url + "/")
    assert urlsplit(page.url).query == "tag=develop"

    page.get_by_role("combobox", name="Search specs").fill("py-torch")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=py-torch"))
    assert parse_qsl(urlsplit(page.url).query) == [("q", "py-torch"), ("tag", "develop")]
    torch = [s for s in specs if s["package"] == "py-torch"]
    develop_torch = [s for s in torch if s["tag"] == "develop"]
    assert page.locator("#total").inner_text() == f"{len(develop_torch):,}"

    first = shown_count(page, "os", "ubuntu22.04")
    page.locator('section[data-facet="os"] a[data-value="ubuntu22.04"]').click()
    page.wait_for_url(re.compile(r"os=ubuntu22.04"))
    assert page.locator("#total").inner_text() == f"{first:,}"
    # Counts of the OS facet ignore its own selection: another OS shows what it would add.
    second = shown_count(page, "os", "ubuntu24.04")
    page.locator('section[data-facet="os"] a[data-value="ubuntu24.04"]').click()
    page.wait_for_url(re.compile(r"os=ubuntu24.04"))

    assert parse_qsl(urlsplit(page.url).query) == [
        ("q", "py-torch"),
        ("tag", "develop"),
        ("os", "ubuntu22.04"),
        ("os", "ubuntu24.04"),
    ]
    chips = page.locator(".chips a.chip[data-facet]")
    remove_mark = "\N{MULTIPLICATION SIGN}"
    # Each chip's text says what it removes (the first words for screen readers only).
    assert [" ".join(t.split()) for t in chips.all_inner_texts()] == [
        f"Remove the filter tag: develop{remove_mark}",
        f"Remove the filter os: ubuntu22.04{remove_mark}",
        f"Remove the filter os: ubuntu24.04{remove_mark}",
    ]
    expected = [s for s in develop_torch if s["os"] in ("ubuntu22.04", "ubuntu24.04")]
    assert first + second == len(expected)
    assert page.locator("#total").inner_text() == f"{len(expected):,}"
    assert page.locator('section[data-facet="os"] a[aria-current="true"]').count() == 2

    # Removing a chip drops just that value.
    page.locator('.chips a.chip[data-value="ubuntu22.04"]').click()
    page.wait_for_url(lambda url: "ubuntu22.04" not in url)
    assert page.locator("#total").inner_text() == f"{second:,}"


def test_a_result_opens_its_spec_page_with_install_commands(page, generated_index, live_server_for):
    server = live_server_for(generated_index)
    page.goto(server.url + "/search?tag=develop&q=hdf5")
    row = page.locator("tr.hit").first
    spec_id = row.get_attribute("data-id")
    row.locator("a").first.click()
    page.wait_for_url(re.compile(r"/spec/"))
    tag, hash_ = spec_id.split("/")
    assert page.locator("#full-hash").inner_text() == hash_
    assert f"/{hash_}" in page.locator("#install-command").inner_text()
    assert f"spack mirror add {tag} " in page.locator("#mirror-setup").inner_text()


def test_autocomplete_with_the_keyboard(page, generated_index, live_server_for):
    server = live_server_for(generated_index)
    page.goto(server.url + "/search")
    box = page.get_by_role("combobox", name="Search specs")
    box.press_sequentially("+cuda py-to", delay=20)
    options = page.locator("#suggestions").get_by_role("option")
    options.first.wait_for()
    assert box.get_attribute("aria-expanded") == "true"
    assert options.first.get_attribute("data-value") == "py-torch"
    box.press("ArrowDown")
    assert options.first.get_attribute("aria-selected") == "true"
    box.press("Enter")  # takes the suggestion, replacing the word being typed
    assert box.input_value() == "+cuda py-torch"
    assert page.get_by_role("listbox").is_hidden()
    box.press("Enter")  # now submits
    page.wait_for_url(re.compile(r"q=%2Bcuda\+py-torch"))
    assert page.locator("tr.hit").count() > 0


def test_a_misspelt_query_offers_a_did_you_mean_link(page, generated_index, live_server_for):
    server = live_server_for(generated_index)
    page.goto(server.url + "/search?q=py-trch")
    assert page.locator("#no-results").is_visible()
    link = page.locator("#did-you-mean a").first
    assert link.inner_text() == "py-torch"
    link.click()
    page.wait_for_url(re.compile(r"q=py-torch"))
    assert int(page.locator("#total").inner_text().replace(",", "")) > 0
    assert page.locator("tr.hit mark").first.inner_text() == "py-torch"
