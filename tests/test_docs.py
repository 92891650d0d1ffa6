"""The README and docs/ keep their promises: short front page, links and pictures that resolve,
scripts and commands that exist."""
import re
from pathlib import Path

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
