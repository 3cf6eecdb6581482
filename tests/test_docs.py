"""The documentation only names what exists: files it links to, make targets, manage.py commands, env variables.

README.md and docs/*.md are read as text; code spans and fenced blocks are where commands and variables are
named. No database: only the command registry (django.core.management.get_commands) needs the settings.
"""

import ast
import re
from pathlib import Path

import pytest
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
EXPECTED_PAGES = {
    "index.md",
    "guide-pm.md",
    "guide-data-scientist.md",
    "guide-architect.md",
    "guide-admin.md",
    "architecture.md",
    "operations.md",
}

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
ENV_NAME = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
ENV_ASSIGNMENT = re.compile(r"\b([A-Z][A-Z0-9_]*)=")
SETTINGS_HELPERS = {"env_str", "env_bool", "env_int", "env_float", "env_list", "env_path"}


def prose(text: str) -> str:
    """The text without fenced code blocks (links inside them are not links)."""
    return FENCE.sub("", text)


def code(text: str) -> list[str]:
    """Every fenced block and every inline code span."""
    blocks = FENCE.findall(text)
    return blocks + INLINE_CODE.findall(prose(text))


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in prose(page.read_text()).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return found


def relative_links(page: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(page.read_text()))
        if not re.match(r"[a-z]+:", target)  # http:, https:, mailto:
    ]


def test_every_page_the_readme_promises_is_there():
    assert {p.name for p in DOCS if p.parent.name == "docs"} >= EXPECTED_PAGES


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_image_points_at_a_file_that_exists(page):
    broken = []
    for target in relative_links(page):
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_file():
            broken.append(
                f"{target}: no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file}"
            )
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(f"{target}: no heading #{fragment} in {file.name}")
    assert not broken, f"{page.name} links to what does not exist:\n" + "\n".join(broken)


def test_the_readme_shows_the_comparison_report_screenshot():
    assert "docs/img/05-ds-comparison-report.png" in relative_links(ROOT / "README.md")


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_make_target_and_manage_py_command_named_exists(page):
    snippets = code(page.read_text())
    targets = {t for s in snippets for t in re.findall(r"(?:^|[\s`;&|(])make ([a-z][\w-]*)", s, re.M)}
    commands = {c for s in snippets for c in re.findall(r"manage\.py ([a-z][a-z_]*)", s)}
    assert targets - make_targets() == set(), f"{page.name} names make targets the Makefile lacks"
    assert commands - set(get_commands()) == set(), f"{page.name} names manage.py commands that do not exist"


def variables_read() -> set[str]:
    """Names read from the environment by llmops/settings.py (its env_* helpers and os.environ), scripts/, and
    docker-compose.yml's own ${NAME} interpolations (operations.md documents the compose file too)."""
    names = set()
    tree = ast.parse((ROOT / "llmops" / "settings.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if called in SETTINGS_HELPERS or (called == "get" and "environ" in ast.unparse(func)):
                names.add(node.args[0].value)
    for script in (ROOT / "scripts").glob("*.py"):
        names |= set(re.findall(r"[\"']([A-Z][A-Z0-9_]+)[\"']", script.read_text()))
    for script in [*(ROOT / "scripts").glob("*.sh"), ROOT / "docker-compose.yml"]:
        names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", script.read_text()))
    return names


def test_every_environment_variable_in_operations_is_read_by_the_code():
    snippets = code((ROOT / "docs" / "operations.md").read_text())
    named = {n for s in snippets for n in ENV_NAME.findall(s)}
    named |= {n for s in snippets for n in ENV_ASSIGNMENT.findall(s)}
    named |= {s for s in snippets if re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", s)}
    assert {"ARTIFACT_ROOT", "DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= named  # the parser finds them
    unknown = sorted(named - variables_read())
    assert not unknown, f"operations.md names variables nothing reads: {unknown}"
