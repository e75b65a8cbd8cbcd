"""Every relative link in the README, docs/ and benchmarks/README points at a file and heading that exist.

The docs cite measured folders and each other's sections by anchor; a renamed heading or a moved
benchmark folder would otherwise leave a dead link that no other test reads.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
FENCE = re.compile(r"```.*?```", flags=re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+\s+(.*)$", flags=re.M)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation but '-' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {github_slug(m.group(1)) for m in HEADING.finditer(FENCE.sub("", path.read_text()))}


def dead_links(path: Path) -> list[str]:
    dead = []
    for target in LINK.findall(FENCE.sub("", path.read_text())):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path.resolve()
        if not dest.exists():
            dead.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            dead.append(f"{target} (no such heading)")
    return dead


def test_github_slug_matches_github():
    heading = "Finding the records that are wrong: `erts audit`"
    assert github_slug(heading) == "finding-the-records-that-are-wrong-erts-audit"
    assert github_slug("Against the goal (CinC relabels: AUROC >= 0.85)") == "against-the-goal-cinc-relabels-auroc--085"


def test_dead_links_are_found(tmp_path):
    (tmp_path / "b.md").write_text("# Real heading\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#real-heading) [gone](c.md) [moved](b.md#old-heading) [web](https://x.org/y)\n"
                    "```\n[in code](nowhere.md)\n```\n")
    assert dead_links(page) == ["c.md (no such file)", "b.md#old-heading (no such heading)"]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_links_resolve(path):
    assert dead_links(path) == []
