"""Do the README and docs/ stay true? A front door that stays short, links that lead
somewhere, and commands that exist.

The README is a front door (what the kit is, the two commands, one path each for
students, instructors and authors); the rest lives in docs/, one page per reader. These
tests read the Markdown itself: every relative link (and its #anchor) must reach a file
and a heading, and every ``python -m autograder SUBCOMMAND --option`` quoted in code must
be one the command line really has (read from its own ``--help``).
"""

from __future__ import annotations

import contextlib
import io
import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 160

# Pages being written on another branch: a link to one is accepted while it is absent
# (and checked like any other once it exists). Remove an entry when its page lands.
PENDING: set[Path] = set()

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
SPAN = re.compile(r"`+([^`]+?)`+", re.S)
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
COMMAND = re.compile(r"python -m autograder[ \t\n]+([a-z][a-z0-9-]*)([^\n]*)")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")


def _prose(text: str) -> str:
    """The text outside fenced blocks and inline code (where a link is a link)."""
    return SPAN.sub(" ", FENCE.sub(" ", text))


def _code(text: str) -> list[str]:
    """Every piece of code in a page: fenced lines (without their shell comments) and
    inline spans (which may run over a line break)."""
    pieces = []
    for block in FENCE.finditer(text):
        pieces += [re.split(r"\s#\s", line, maxsplit=1)[0] for line in block.group(0).splitlines()[1:-1]]
    pieces += [" ".join(m.group(1).split()) for m in SPAN.finditer(FENCE.sub(" ", text))]
    return pieces


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = SPAN.sub(lambda m: m.group(1), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)          # a link's text only
    text = text.replace("*", "").lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LMN")
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(FENCE.sub(" ", text)):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(page: Path, text: str) -> list[str]:
    """Relative links in ``text`` (the contents of ``page``) that lead nowhere."""
    bad = []
    for m in LINK.finditer(_prose(text)):
        target = m.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):      # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            if dest not in PENDING:
                bad.append(f"{target}: no such file")
            continue
        target_text = text if not path else dest.read_text() if dest.suffix == ".md" else ""
        if anchor and target_text and anchor not in anchors(target_text):
            bad.append(f"{target}: no heading #{anchor} in {dest.name}")
    return bad


def _help(*args: str) -> str:
    from autograder.frontends.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([*args, "--help"])
    return out.getvalue()


@pytest.fixture(scope="module")
def cli() -> dict[str, set[str]]:
    """The command line's subcommands, each with the options its own --help lists."""
    usage = _help()
    choices = re.search(r"\{([a-z0-9,-]+)\}", usage)
    assert choices, f"no subcommands found in:\n{usage}"
    return {name: set(OPTION.findall(_help(name))) for name in choices.group(1).split(",")}


def unknown_commands(text: str, cli: dict[str, set[str]]) -> list[str]:
    bad = []
    for piece in _code(text):
        for m in COMMAND.finditer(piece):
            name, rest = m.group(1), m.group(2)
            if name not in cli:
                bad.append(f"python -m autograder {name}: no such subcommand "
                           f"(there are {', '.join(sorted(cli))})")
                continue
            bad += [f"python -m autograder {name} {opt}: no such option"
                    for opt in OPTION.findall(rest) if opt not in cli[name]]
    return bad


def test_the_readme_is_a_short_front_door():
    """Does the README stay under 160 lines, with the details in docs/?"""
    lines = README.read_text().count("\n")
    assert lines < README_MAX_LINES, (
        f"README.md has {lines} lines (keep it under {README_MAX_LINES}): move the details to "
        "the page in docs/ for their reader")


def test_the_readme_keeps_the_two_commands():
    """Are the two commands CI runs (.ci/run) still the ones the README gives?"""
    text = README.read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ("bash setup.sh", ".venv/bin/python -m pytest"):
        assert command in text and command in ci, command


def test_the_readme_leads_to_every_page():
    """Is every page in docs/ reachable from the README's front door?"""
    text = _prose(README.read_text())
    linked = {(ROOT / m.group(1).partition("#")[0]).resolve() for m in LINK.finditer(text)}
    orphans = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert orphans == [], f"docs/ pages the README does not link to: {orphans}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page):
    """Does every relative link (and #anchor) in the README and docs/ reach a file?"""
    assert broken_links(page, page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_command_exists(page, cli):
    """Is every `python -m autograder SUBCOMMAND --option` in the docs a real one?"""
    assert unknown_commands(page.read_text(), cli) == []


def test_the_link_checker_finds_a_broken_link():
    """Can the link test fail? A missing file and a missing heading are both found."""
    text = ("# Title\n\nSee [a](no-such-page.md), [b](#no-such-heading), [ok](#title), "
            "[web](https://example.org/x.md) and `[code](ignored.md)`.\n")
    assert broken_links(README, text) == ["no-such-page.md: no such file",
                                          "#no-such-heading: no heading #no-such-heading in README.md"]


def test_slugs_follow_github():
    """Are anchors made the way GitHub makes them?"""
    assert slug("Whose fault is it? Grader errors") == "whose-fault-is-it-grader-errors"
    assert slug("The lesson's data") == "the-lessons-data"
    assert slug("`check()` in Jupyter") == "check-in-jupyter"
    assert anchors("# A\n## A\n") == {"a", "a-1"}


def test_the_command_checker_finds_a_made_up_command(cli):
    """Can the command test fail? A made-up subcommand and a made-up option are found."""
    text = ("Run `python -m autograder frobnicate x` or\n\n```bash\n"
            "python -m autograder grade a.ipynb --jsn out.json   # not --frob\n"
            "python -m autograder grade a.ipynb --json out.json\n```\n"
            "and `python -m autograder.data`, which is a module, not a subcommand.\n")
    bad = unknown_commands(text, cli)
    assert len(bad) == 2, bad
    assert bad[0].startswith("python -m autograder grade --jsn")
    assert bad[1].startswith("python -m autograder frobnicate")
