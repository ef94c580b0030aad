"""The pages hold together: every relative link and #anchor between README.md,
docs/*.md, CHANGELOG.md and CONTRIBUTING.md resolves, every setting is in the
configuration reference, and the files the pages name exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from authapi.config import Settings
from tests.support.docs_pages import ROOT, anchors, code_spans, links, pages, slug

# Links to other sites are not followed: the tests run offline.
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:")

# A `code span` that names a file or folder of the repository.
REPOSITORY_PATH = re.compile(
    r"^(?:src|tests|bench|scripts|deploy|clients|migrations|docs)/[\w./-]*$"
    r"|^[\w-]+/[\w./-]*\.(?:py|md)$"
    r"|^[\w-]+\.py$"
)


def page_ids() -> list[str]:
    return [str(page.relative_to(ROOT)) for page in pages()]


@pytest.mark.parametrize("page", pages(), ids=page_ids())
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for line, target in links(page):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{page.name}:{line}: {target} (no such file)")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{page.name}:{line}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_link_check_can_fail(tmp_path: Path) -> None:
    """The check above would see a broken anchor and a missing file."""
    page = tmp_path / "page.md"
    page.write_text("# A title\n\n[fine](#a-title), [gone](#b-title),\n[file](nowhere.md)\n")
    assert anchors(page) == {"a-title"}
    assert links(page) == [(3, "#a-title"), (3, "#b-title"), (4, "nowhere.md")]


@pytest.mark.parametrize(
    ("title", "anchor"),
    [
        (
            "Behind PgBouncer (or another pooler in transaction mode)",
            "behind-pgbouncer-or-another-pooler-in-transaction-mode",
        ),
        ("Ready, but the database refuses writes", "ready-but-the-database-refuses-writes"),
        ("`authapi keys` commands", "authapi-keys-commands"),
        ("Scale-out", "scale-out"),
    ],
)
def test_anchors_are_made_as_github_makes_them(title: str, anchor: str) -> None:
    assert slug(title) == anchor


def test_every_setting_is_in_the_configuration_reference() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text()
    missing = [
        f"AUTHAPI_{field.upper()}"
        for field in Settings.model_fields
        if f"`AUTHAPI_{field.upper()}`" not in reference
    ]
    assert not missing


# The changelog names files as they were then.
CURRENT_PAGES = [page for page in pages() if page.name != "CHANGELOG.md"]


@pytest.mark.parametrize(
    "page", CURRENT_PAGES, ids=[str(p.relative_to(ROOT)) for p in CURRENT_PAGES]
)
def test_every_file_the_page_names_exists(page: Path) -> None:
    package = ROOT / "src" / "authapi"
    modules = {path.name for path in package.rglob("*.py")}
    missing = []
    for line, span in code_spans(page):
        if not REPOSITORY_PATH.match(span):
            continue
        if "/" in span:
            # `sessions/service.py`: a module of the package, named from inside it.
            found = (ROOT / span).exists() or (package / span).exists()
        else:
            found = span in modules  # `errors.py`, `router.py`: some module of the package
        if not found:
            missing.append(f"{page.name}:{line}: {span}")
    assert not missing, "\n".join(missing)
