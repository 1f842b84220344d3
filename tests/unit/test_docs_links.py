"""Every relative link of the README, CONTRIBUTING.md and docs/ points at a file that exists, and at a
heading of that file where the link names one (GitHub's anchors)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def prose(page: Path) -> str:
    """The page without its fenced code blocks, where brackets are code, not links."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", prose(page), re.M):
        base, n = anchor(heading), 0
        while (name := base if n == 0 else f"{base}-{n}") in found:
            n += 1
        found.add(name)
    return found


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page)) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_the_anchor_rule():
    assert anchor("Client overrides: the file you already have") == "client-overrides-the-file-you-already-have"
    assert anchor("Offset map (mirror-engine's own)") == "offset-map-mirror-engines-own"
    assert anchor("Security: TLS, SASL, secrets, least privilege") == "security-tls-sasl-secrets-least-privilege"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file}")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(f"{target}: no heading with the anchor #{fragment}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_pages_have_links_to_check():
    assert len(PAGES) > 5 and all(relative_links(p) for p in (ROOT / "README.md", ROOT / "docs" / "README.md"))


# "docs/<page>.md, '<heading>'" as the code cites a section of the docs
CITATION = re.compile(r"(docs/[\w\-]+\.md)(?:, '([^']+)')?")
SOURCES = [p for d in ("engine", "tests", "tools", "benchmarks") for p in sorted((ROOT / d).rglob("*"))
           if p.suffix in (".py", ".pyx", ".pxd", ".pxi", ".pyi", ".java", ".go") and "__pycache__" not in p.parts]


def test_code_cites_the_repositorys_own_docs_and_their_headings():
    """The code explains itself through docs/ only (never a document outside the repository), and a
    cited heading exists on its page."""
    outside, broken = [], []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8", errors="replace")
        where = str(path.relative_to(ROOT))
        if re.search(r"MM2-REFERENCE|LIBRDKAFKA-FACTS|KAFKA-BATCH-FACTS", text) and path.name != Path(__file__).name:
            outside.append(where)
        for page, heading in CITATION.findall(text):
            heading = re.sub(r"\s*\n\s*(?:#\s*)?", " ", heading)  # a citation wrapped over comment lines
            target = ROOT / page
            if not target.exists():
                broken.append(f"{where}: {page}")
            elif heading and anchor(heading) not in anchors(target):
                broken.append(f"{where}: {page}, '{heading}'")
    assert not outside, f"cites a document outside the repository: {outside}"
    assert not broken, f"cites a page or heading that does not exist: {broken}"
