"""Code listings in the Markdown pages are generated from the modules (docs/snippets.py).

The first test is the one that matters day to day: it fails, naming the command that fixes
it, whenever a module changed under a listing, a marker is broken, or a marked section is
shown nowhere. The others pin the generator's behaviour on a small repository of their own.
"""
from __future__ import annotations

import importlib.util
import logging
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


snippets = _load("docs_snippets_under_test", REPO / "docs" / "snippets.py")
S = snippets._SCISSORS   # the marker's scissors, never written literally in this file


def test_every_listing_is_up_to_date():
    problems = snippets.scan(REPO).problems()
    assert not problems, (f"{len(problems)} code listing problem(s); fix the markers named, then run "
                          f"`{snippets.COMMAND}`:\n  " + "\n  ".join(problems))


def test_the_lessons_hold_no_directive_and_every_listing_links_its_lines():
    report = snippets.scan(REPO)
    assert report.regions, "no listing found at all"
    assert not [r for r in report.regions if r.directive]
    for r in report.regions:
        text = "\n".join(r.current)
        path, _, _ = r.target.partition(":")
        assert f"[{path}, line" in text and "#L" in text, f"{r.page}:{r.line} has no line link"


# --------------------------------------------------------------------------- a repository of its own

def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def repo(tmp_path):
    write(tmp_path, "pkg/mod.py", f'''
        """A module."""
        import math


        # {S} [start:area]
        def area(r):
            return math.pi * r * r   # ```inline fence```
        # {S} [end:area]


        class Shape:
            # {S} [start:method]
            def scale(self, k):
                return k
            # {S} [end:method]
        ''')
    write(tmp_path, "pkg/README.md", f'''
        # Lesson

        The area:

        ```python
        {S} "pkg/mod.py:area"
        ```

        And a method, outside a fence:

        {S} "pkg/mod.py:method"

        An example that is not an include:

        ```markdown
        <!-- include: pkg/mod.py:area -->
        ```
        ''')
    return tmp_path


def page(root: Path, rel: str = "pkg/README.md") -> str:
    return (root / rel).read_text(encoding="utf-8")


def test_write_converts_directives_into_regions_with_code_line_numbers_and_links(repo):
    report = snippets.scan(repo)
    assert [r.directive for r in report.regions] == [True, True]
    assert len(report.problems()) == 2 and all("not converted" in p for p in report.problems())
    snippets.write(repo)
    text = page(repo)
    assert S not in text
    assert "<!-- include: pkg/mod.py:area -->" in text and "<!-- include: pkg/mod.py:method -->" in text
    # the section's lines, dedented, in a fence longer than any backtick run inside, numbered as in the file
    assert '````python linenums="6"\ndef area(r):\n    return math.pi * r * r   # ```inline fence```\n````' in text
    assert '```python linenums="13"\ndef scale(self, k):\n    return k\n```' in text
    assert "<small>[pkg/mod.py, lines 6–7](mod.py#L6-L7)</small>" in text
    assert "<small>[pkg/mod.py, lines 13–14](mod.py#L13-L14)</small>" in text
    # the example inside a ```markdown fence is left alone
    assert "```markdown\n<!-- include: pkg/mod.py:area -->\n```" in text
    assert snippets.scan(repo).problems() == []


def test_write_is_idempotent_and_touches_only_regions(repo):
    snippets.write(repo)
    first = page(repo)
    report, written = snippets.write(repo)
    assert written == [] and page(repo) == first
    assert first.startswith("# Lesson\n\nThe area:\n\n<!-- include:")
    assert first.endswith("An example that is not an include:\n\n```markdown\n<!-- include: pkg/mod.py:area -->\n```\n")


def test_a_changed_module_makes_the_region_stale_until_write(repo, capsys):
    snippets.write(repo)
    mod = repo / "pkg/mod.py"
    mod.write_text(mod.read_text().replace('"""A module."""', '"""A module."""\n# one more line'))
    problems = snippets.scan(repo).problems()
    assert problems == [p for p in problems if "is stale" in p] and len(problems) == 2
    assert snippets.main(["--check", "--root", str(repo)]) == 1
    assert snippets.COMMAND in capsys.readouterr().err
    assert snippets.main(["--write", "--root", str(repo)]) == 0
    assert "lines 7–8](mod.py#L7-L8)" in page(repo)
    assert snippets.main(["--check", "--root", str(repo)]) == 0


def test_a_hand_edit_or_a_merge_conflict_inside_a_region_is_overwritten(repo):
    snippets.write(repo)
    clean = page(repo)
    messy = clean.replace("    return k\n", "<<<<<<< HEAD\n    return k  # mine\n=======\n    return 2 * k\n>>>>>>> other\n")
    (repo / "pkg/README.md").write_text(messy)
    assert any("stale" in p for p in snippets.scan(repo).problems())
    snippets.write(repo)
    assert page(repo) == clean


def _move_area(repo: Path, to: str) -> None:
    mod = repo / "pkg/mod.py"
    text = mod.read_text()
    start, end = text.index(f"# {S} [start:area]"), text.index(f"# {S} [end:area]") + len(f"# {S} [end:area]\n")
    write(repo, to, "import math\n\n\n" + text[start:end])
    mod.write_text(text[:start] + text[end:])


def test_a_section_moved_to_another_file_is_followed(repo):
    snippets.write(repo)
    _move_area(repo, "pkg/geometry.py")
    problems = snippets.scan(repo).problems()
    assert any("section 'pkg/mod.py:area' moved to pkg/geometry.py:area; --write will follow it" in p
               for p in problems)
    snippets.write(repo)
    text = page(repo)
    assert "<!-- include: pkg/geometry.py:area -->" in text and "(geometry.py#L5-L6)" in text
    assert snippets.scan(repo).problems() == []


def test_a_section_moved_ambiguously_is_an_error_naming_the_candidates(repo):
    snippets.write(repo)
    _move_area(repo, "lib/a.py")
    write(repo, "lib2/b.py", f"# {S} [start:area]\nx = 1\n# {S} [end:area]\n")
    problems = snippets.scan(repo).problems()
    assert any("pkg/mod.py has no section 'area'; a section 'area' is in lib/a.py, lib2/b.py" in p for p in problems)
    # the broken region is left as it was, not emptied; the others are regenerated
    before = page(repo)
    snippets.write(repo)
    after = page(repo)
    region = before[before.index("<!-- include: pkg/mod.py:area"):before.index("<!-- /include -->")]
    assert region in after and after != before


def test_marker_errors_and_unused_sections(repo):
    write(repo, "pkg/nested.py", f'''
        # {S} [start:outer]
        x = 1
        # {S} [start:inner]
        y = 2
        # {S} [end:inner]
        # {S} [end:outer]
        ''')
    write(repo, "pkg/unclosed.py", f'''
        # {S} [start:open]
        z = 3
        # {S} [end:other]
        ''')
    write(repo, "pkg/twice.py", f'''
        # {S} [start:a]
        w = 4
        # {S} [end:a]
        # {S} [start:a]
        w = 5
        # {S} [end:a]
        ''')
    problems = "\n".join(snippets.scan(repo).problems())
    assert "pkg/nested.py:3: section 'inner' starts inside section 'outer' (line 1)" in problems
    assert "pkg/nested.py:5: end of section 'inner' without its start marker" in problems
    assert "pkg/unclosed.py:3: end of section 'other' without its start marker" in problems
    assert "pkg/unclosed.py:1: section 'open' has no end marker" in problems
    assert "pkg/twice.py:4: section 'a' is marked twice in this file" in problems
    assert "pkg/twice.py:1: section 'a' is shown on no page; remove its two marker lines (1 and 3)" in problems


def test_relative_links_from_another_folder_indentation_and_whole_files(repo):
    write(repo, "docs/guide.md", f'''
        1. A step:

            {S} "pkg/mod.py:method"

        2. The whole file:

            ```toml
            {S} "conf/demo.toml"
            ```
        ''')
    write(repo, "conf/demo.toml", "depth = 4\n")
    snippets.write(repo)
    text = page(repo, "docs/guide.md")
    assert "    <!-- include: pkg/mod.py:method -->\n\n    ```python linenums=\"13\"\n    def scale" in text
    assert "    <small>[pkg/mod.py, lines 13–14](../pkg/mod.py#L13-L14)</small>\n\n    <!-- /include -->" in text
    assert '```toml linenums="1"\n    depth = 4\n    ```' in text
    assert "[conf/demo.toml, line 1](../conf/demo.toml#L1)" in text
    assert snippets.scan(repo).problems() == []


def test_unsupported_forms_are_errors(repo):
    write(repo, "pkg/other.md", f'''
        ```python
        # a comment
        {S} "pkg/mod.py:area"
        ```

        {S} "pkg/mod.py:10:20"

        <!-- include: pkg/mod.py:area -->
        no end
        ''')
    problems = "\n".join(snippets.scan(repo).problems())
    assert "a code fence mixes" in problems
    assert "line-number ranges are not supported" in problems
    assert "has no '<!-- /include -->' line" in problems


def test_the_docs_build_warns_on_every_problem_and_renders_fresh_code(repo, caplog):
    """docs/hooks.py: each problem is a warning (fatal under --strict); pages show current code."""
    pytest.importorskip("mkdocs")
    hooks = _load("docs_hooks_under_test", REPO / "docs" / "hooks.py")
    hooks.assets.ensure = lambda log=None: None   # the scripts are not this test's subject
    config = SimpleNamespace(config_file_path=str(repo / "mkdocs.yml"))
    with caplog.at_level(logging.WARNING, logger="mkdocs"):
        hooks.on_pre_build(config)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all(snippets.COMMAND in w for w in warnings)
    assert all(r.name.startswith("mkdocs.") for r in caplog.records)   # counted by --strict
    page_obj = SimpleNamespace(file=SimpleNamespace(src_uri="pkg/README.md"))
    html_source = hooks.on_page_markdown(page(repo), page_obj, config, None)
    assert "def area(r):" in html_source and S not in html_source


def test_strict_builds_stay_strict_under_quiet():
    """`mkdocs build --strict --quiet` (make test) must still count warnings: docs/hooks.py
    lowers the "mkdocs" logger from ERROR (what --quiet sets) to WARNING when strict."""
    pytest.importorskip("mkdocs")
    hooks = _load("docs_hooks_under_test_quiet", REPO / "docs" / "hooks.py")
    hooks.assets.ensure = lambda log=None: None
    logger = logging.getLogger("mkdocs")
    before = logger.level
    try:
        logger.setLevel(logging.ERROR)
        hooks.on_config(SimpleNamespace(strict=False))
        assert logger.level == logging.ERROR
        hooks.on_config(SimpleNamespace(strict=True))
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(before)
