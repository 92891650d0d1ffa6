"""The README and docs/ keep their promises: short front page, links and pictures that resolve,
scripts and commands that exist."""
import re

import pytest

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page):
    """GitHub's anchors of a page's headings."""
    return {re.sub(r"[^a-z0-9 _-]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in page.read_text().splitlines() if line.startswith("#")}


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    results = next(i for i, line in enumerate(lines) if line.startswith("## Results"))
    assert results < 15  # the numbers come first
    assert not any("this machine" in line for line in lines)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name}: {target}"
        if linked.suffix == ".png":
            assert linked.stat().st_size < 200_000, f"{linked.name} is not a small PNG"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_script_a_page_names_exists(page):
    text = page.read_text()
    for script in set(re.findall(r"\b((?:src|bench)/[\w/]+\.(?:py|sh)|configs/[\w]+\.yaml)", text)):
        assert (ROOT / script).is_file(), f"{page.name} names {script}"


GLOSSARY = ROOT / "docs" / "glossary.md"
TERMS = [re.split(r" \(", bold)[0].rstrip(".") for bold in re.findall(r"^\*\*([^*]+)\*\*", GLOSSARY.read_text(), re.M)]


def test_the_glossary_explains_the_terms_the_pages_use_and_every_page_links_it():
    assert {"OOF", "Nested", "Test-like", "AdaBN", "Caruana", "DeLong", "Youden's J", "Letterbox"} <= set(TERMS)
    for page in PAGES:
        if page == GLOSSARY:
            continue
        text = page.read_text()
        used = [t for t in TERMS if re.search(rf"\b{re.escape(t.split()[0])}\b", text, re.I)]
        assert not used or "glossary.md" in text, f"{page.name} uses {used} without linking the glossary"


def test_every_number_in_the_readme_results_table_is_in_the_benchmarks_page():
    """The front page's scores are measured, and docs/benchmarks.md says how: each with the same digits."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Results"):].split("\n\n")[2]
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text()
    rows = [line.split("|")[3] for line in table.splitlines() if line.startswith("|") and not line.startswith("|---")][1:]
    assert len(rows) >= 3
    for score in rows:
        for number in re.findall(r"\b\d\.\d{3,4}\b", score):
            assert re.search(rf"(?<![\d.]){re.escape(number)}(?!\d)", benchmarks), f"README's {number} is not in benchmarks.md"
