"""The documents hold together: every rule cited exists in docs/design.md, every ADR is
in the index, and every relative link in docs/ and the README leads to a file."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
RULE = re.compile(r"\brule (\d+)\b")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def design_rules() -> set[int]:
    text = (DOCS / "design.md").read_text()
    return {int(n) for n in re.findall(r"^(\d+)\. \*\*", text, flags=re.MULTILINE)}


def cited_files() -> list[Path]:
    files = [*DOCS.rglob("*.md"), REPO / "README.md"]
    for tree in ("ajs3", "tests", "bench", "resource-agents"):
        files += [
            p
            for p in (REPO / tree).rglob("*")
            if p.suffix in (".py", ".c", ".md", "") and p.is_file() and "__pycache__" not in p.parts
        ]
    return files


def test_design_numbers_its_rules_from_one() -> None:
    rules = design_rules()
    assert rules == set(range(1, len(rules) + 1)) and len(rules) >= 8


def test_every_rule_cited_is_in_design_md() -> None:
    rules = design_rules()
    bad = []
    for path in cited_files():
        if path == DOCS / "design.md" or path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            if "design.md" in line and "docs/design.md" not in line and "](" not in line:
                bad.append(f"{path.relative_to(REPO)}:{lineno}: names design.md without its place")
            bad += [
                f"{path.relative_to(REPO)}:{lineno}: rule {n} is not in docs/design.md"
                for n in map(int, RULE.findall(line))
                if n not in rules
            ]
    assert not bad, "\n".join(bad)


def test_every_adr_is_in_the_index() -> None:
    index = (DOCS / "adr" / "README.md").read_text()
    missing = [
        p.name
        for p in sorted((DOCS / "adr").glob("[0-9][0-9][0-9][0-9]-*.md"))
        if f"]({p.name})" not in index
    ]
    assert not missing, f"add to docs/adr/README.md: {missing}"


def test_relative_links_in_docs_lead_to_files() -> None:
    bad = []
    for page in [*DOCS.rglob("*.md"), REPO / "README.md"]:
        for target in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                bad.append(f"{page.relative_to(REPO)}: {target}")
    assert not bad, "broken links:\n" + "\n".join(bad)
