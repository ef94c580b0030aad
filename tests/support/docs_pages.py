"""The project's Markdown pages as the tests read them: their fenced code blocks (by
the name an `<!-- example: NAME -->` line before a block gives it), their headings'
anchors as GitHub makes them, and their links."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A fence opens with three backticks (indented, inside a list item) and a language.
FENCE = re.compile(r"^(?P<indent> *)```(?P<language>[\w+-]*)\s*$")
EXAMPLE_NAME = re.compile(r"^\s*<!-- example: (?P<name>[\w-]+) -->\s*$")
HEADING = re.compile(r"^(?P<level>#{1,6}) (?P<title>.+?)\s*$")
# [text](target): the target up to its closing parenthesis, without a title.
LINK = re.compile(r"\[(?:[^\]\[]|\[[^\]]*\])*\]\((?P<target><[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"(`+).+?\1")


def pages() -> list[Path]:
    """Every page a reader of the project is sent to: the README, the docs, the
    changelog and the contributors' guide."""
    return [
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
        ROOT / "CONTRIBUTING.md",
        *sorted((ROOT / "docs").glob("*.md")),
    ]


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, counting from 1
    language: str
    name: str | None
    text: str

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent = opening["indent"]
        body: list[str] = []
        end = index + 1
        while end < len(lines) and lines[end] != f"{indent}```":
            body.append(lines[end])
            end += 1
        if end == len(lines):
            raise AssertionError(f"{page.name}:{index + 1}: a code block that never closes")
        previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
        named = EXAMPLE_NAME.match(previous)
        found.append(
            Block(
                page=page,
                line=index + 1,
                language=opening["language"],
                name=named["name"] if named else None,
                text=textwrap.dedent("\n".join(body) + "\n"),
            )
        )
        index = end + 1
    return found


def example(name: str) -> str:
    """The text of the one block named `name`, wherever in the pages it is."""
    matches = [block for page in pages() for block in blocks(page) if block.name == name]
    assert len(matches) == 1, f"{len(matches)} blocks named {name!r}"
    return matches[0].text


def prose(page: Path) -> list[tuple[int, str]]:
    """(line number, line) outside code blocks."""
    inside: str | None = None
    kept: list[tuple[int, str]] = []
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        fence = FENCE.match(line)
        if inside is None and fence is not None:
            inside = fence["indent"]
        elif inside is not None and line == f"{inside}```":
            inside = None
        elif inside is None:
            kept.append((number, line))
    return kept


def slug(title: str) -> str:
    """GitHub's anchor for a heading: the text of its Markdown, lowercased, without
    punctuation other than hyphens and underscores, spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link: its text
    text = text.lower()
    text = "".join(c for c in text if c.isalnum() or c in "-_ ")
    return text.replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose(page):
        heading = HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading["title"])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def links(page: Path) -> list[tuple[int, str]]:
    """(line number, target) of every inline link outside code; a link's text may
    wrap onto the next line."""
    numbered = prose(page)
    text = "\n".join(line for _, line in numbered)
    # Code spans blanked to spaces of the same length, so offsets keep their lines.
    text = CODE_SPAN.sub(lambda span: " " * len(span[0]), text)
    starts = [0]
    for _, line in numbered:
        starts.append(starts[-1] + len(line) + 1)
    found: list[tuple[int, str]] = []
    for link in LINK.finditer(text):
        at = link.start("target")
        row = next(i for i in range(len(numbered)) if starts[i + 1] > at)
        found.append((numbered[row][0], link["target"].strip("<>")))
    return found


def code_spans(page: Path) -> list[tuple[int, str]]:
    """(line number, text) of every `code span` outside code blocks."""
    return [
        (number, span[0].strip("`").strip())
        for number, line in prose(page)
        for span in CODE_SPAN.finditer(line)
    ]
