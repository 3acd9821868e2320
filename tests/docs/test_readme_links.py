"""The README's links lead somewhere: each relative link names a file of the repository and,
with `#anchor`, a heading of that page. (The docs pages are checked by `mkdocs build --strict`,
which does not read the README.)"""

import re

import pytest
from markdown.extensions.toc import slugify
from repo_paths import REPO_ROOT

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
RELATIVE = sorted({target for target in LINK.findall(README) if "://" not in target})


def _anchors(page: str) -> set[str]:
    """The ids MkDocs gives the headings of a page (Python-Markdown's toc slugify)."""
    text = (REPO_ROOT / page).read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # a "# comment" in a code block is no heading
    return {slugify(heading.strip(), "-") for heading in re.findall(r"^#+ (.+)$", text, re.M)}


def test_the_readme_has_relative_links():
    assert len(RELATIVE) >= 5, RELATIVE


@pytest.mark.parametrize("target", RELATIVE)
def test_a_readme_link_leads_to_a_file_and_heading(target):
    page, _, anchor = target.partition("#")
    assert (REPO_ROOT / page).exists(), f"README links to {page}, which does not exist"
    if anchor:
        assert anchor in _anchors(page), f"{page} has no heading #{anchor}: {_anchors(page)}"
