"""Generated code listings in the Markdown pages: one command keeps them equal to the modules.

A lesson shows real code from the modules, never a pasted copy. Each listing is a *region*
of the Markdown file, written by this script from a marked section of a module:

    <!-- include: phases/phase0_tokenizer/bpe.py:split_pattern -->

    ```python linenums="42"
    SPLIT_PATTERN = ...                  (the section's lines, dedented)
    ```

    <small>[phases/phase0_tokenizer/bpe.py, lines 42–46](bpe.py#L42-L46)</small>

    <!-- /include -->

The Markdown file holds plain code, so it reads the same on GitHub, in an editor and on
the docs site; the link goes to the exact lines (``#L42-L46`` is GitHub's line anchor; on
the site the link is to the published file and ``mkdocs build --strict`` checks it).
Everything between the two comments is generated: edit the module, never the region.

A section is marked in the module by two comment lines of their own, the markers of
pymdownx.snippets, which this replaces (a Python file uses ``#``; ``//``, ``--``, ``;``,
``<!--`` and ``/*`` comments work too)::

    # --8<-- [start:split_pattern]
    SPLIT_PATTERN = ...
    # --8<-- [end:split_pattern]

Sections may not nest or overlap (the listing's line numbers are the file's), a name is
used once per file, and every section must be shown somewhere. ``path`` without
``:section`` shows a whole file. To add a listing, mark the section, write the directive
of pymdownx.snippets on a line of its own where the listing goes (outside a code fence,
or as the only line of one, whose language is then kept), and run ``--write``:

    --8<-- "phases/phase0_tokenizer/bpe.py:split_pattern"

Commands (run from anywhere; the repository is the folder above this file):

    python docs/snippets.py --write   # regenerate every region, convert new directives
    python docs/snippets.py --check   # exit 1 and list stale regions, bad or unused markers
    python docs/snippets.py --list    # every section and the pages that show it

``--write`` is idempotent (a second run changes nothing) and touches only region lines
and directive lines. It is how listings are re-synchronised after a merge: when two
branches both changed a module, resolve the module, take either side of any conflicting
region (or delete the conflict markers inside it), and run ``--write``. When a section
left the file a region names (code moved), ``--write`` follows it to the one file of the
same folder that has a section of that name, else to the one file anywhere; with several
candidates it names them and leaves the region as it is. The test
``tests/test_docs_snippets.py`` and the docs build (``docs/hooks.py``) both fail with this
command in their message while anything is stale.

Left out: line-number ranges (``file.py:10:20``, they go stale silently), pymdownx's
multi-line block form, and includes of URLs. The standard library only: the docs build
and the tests import this file.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMAND = "python docs/snippets.py --write"

# Folders never scanned, wherever they appear (plus every hidden folder).
SKIP_DIRS = {"__pycache__", ".venv", "venv", "site", "node_modules", "build", "dist", "vendor"}
# Files that may hold section markers. Markdown is never a source: its regions are the output.
SOURCE_SUFFIXES = {".py", ".toml", ".sh", ".js", ".css", ".yml", ".yaml", ".cfg", ".ini", ".txt", ".html"}
LANGUAGES = {".py": "python", ".toml": "toml", ".sh": "bash", ".js": "javascript", ".css": "css",
             ".yml": "yaml", ".yaml": "yaml", ".json": "json", ".html": "html", ".md": "markdown"}

_SCISSORS = "--8" + "<--"  # spelt in two parts so that this file holds no marker
MARKER = re.compile(r"^[ \t]*(?:#|//|--|;|<!--|/\*)[ \t]*" + re.escape(_SCISSORS)
                    + r"[ \t]*\[(start|end):([A-Za-z0-9_.-]+)\][ \t]*(?:-->|\*/)?[ \t]*$")
DIRECTIVE = re.compile(r"^([ \t]*)" + re.escape(_SCISSORS) + r"[ \t]+(['\"])([^'\"]+)\2[ \t]*$")
BARE_SCISSORS = re.compile(r"^[ \t]*" + re.escape(_SCISSORS) + r"[ \t]*$")
REGION_START = re.compile(r"^([ \t]*)<!-- include: (\S+) -->[ \t]*$")
REGION_END = re.compile(r"^[ \t]*<!-- /include -->[ \t]*$")
FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})(.*)$")


# --------------------------------------------------------------------------- sources

@dataclass(frozen=True)
class Section:
    path: str          # repository-relative, POSIX
    name: str | None   # None: the whole file
    first: int         # 1-based line numbers of the first and last line shown
    last: int
    code: str          # the lines shown, dedented, ending without a newline


@dataclass
class Source:
    """One scanned file: its lines, its sections and the marker errors found in it."""
    path: str
    lines: list[str]
    sections: dict[str, Section] = field(default_factory=dict)
    marker_lines: dict[str, tuple[int, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _listing(path: str, name: str | None, lines: list[str], start: int, stop: int) -> Section:
    """Lines ``start..stop`` (0-based, exclusive), blank edges trimmed, dedented."""
    while start < stop and not lines[start].strip():
        start += 1
    while stop > start and not lines[stop - 1].strip():
        stop -= 1
    code = textwrap.dedent("\n".join(line.rstrip() for line in lines[start:stop]))
    return Section(path, name, start + 1, max(stop, start + 1), code)


def parse_source(root: Path, path: str) -> Source:
    """Read ``path`` and find its marked sections (reporting unclosed, nested or duplicate ones)."""
    lines = (root / path).read_text(encoding="utf-8").splitlines()
    src = Source(path, lines)
    open_: tuple[str, int] | None = None
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            continue
        kind, name = m.groups()
        where = f"{path}:{i + 1}"
        if kind == "start":
            if open_ is not None:
                src.errors.append(f"{where}: section '{name}' starts inside section '{open_[0]}' "
                                  f"(line {open_[1] + 1}); sections may not nest or overlap")
                continue
            if name in src.marker_lines:
                src.errors.append(f"{where}: section '{name}' is marked twice in this file")
                continue
            open_ = (name, i)
        else:
            if open_ is None or open_[0] != name:
                src.errors.append(f"{where}: end of section '{name}' without its start marker")
                continue
            src.marker_lines[name] = (open_[1] + 1, i + 1)
            src.sections[name] = _listing(path, name, lines, open_[1] + 1, i)
            if not src.sections[name].code.strip():
                src.errors.append(f"{where}: section '{name}' is empty")
            open_ = None
    if open_ is not None:
        src.errors.append(f"{path}:{open_[1] + 1}: section '{open_[0]}' has no end marker")
    return src


def _walk(root: Path, suffixes: set[str]):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS
                             and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix in suffixes:
                yield (Path(dirpath) / name).relative_to(root).as_posix()


class Sources:
    """Every source file with markers (scanned once), plus files read on demand."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, Source] = {}
        this = Path(__file__).resolve()
        for path in _walk(root, SOURCE_SUFFIXES):
            if (root / path).resolve() == this:
                continue
            try:
                text = (root / path).read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if _SCISSORS in text:
                self.files[path] = parse_source(root, path)

    def get(self, path: str) -> Source | None:
        if path not in self.files:
            file = self.root / path
            if not file.is_file() or not _inside(self.root, file):
                return None
            self.files[path] = parse_source(self.root, path)
        return self.files[path]

    def where_else(self, name: str) -> list[str]:
        return sorted(p for p, s in self.files.items() if name in s.sections)


def _inside(root: Path, file: Path) -> bool:
    try:
        file.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def relocate(sources: Sources, target: str) -> str | None:
    """Where a section that left its file went: the one file in the same folder that has a
    section of that name, else the one file anywhere; None when there is none or it is ambiguous."""
    path, _, name = target.partition(":")
    if not name or re.fullmatch(r"\d+(:\d+)?", name):
        return None
    src = sources.get(path)
    if src is not None and name in src.sections:
        return None
    others = [p for p in sources.where_else(name) if p != path]
    near = [p for p in others if Path(p).parent == Path(path).parent]
    for candidates in (near, others):
        if len(candidates) == 1:
            return f"{candidates[0]}:{name}"
        if candidates:
            return None
    return None


def resolve(sources: Sources, target: str) -> tuple[Section | None, str | None]:
    """``path[:section]`` -> (the section, None) or (None, why not)."""
    path, _, name = target.partition(":")
    if re.fullmatch(r"\d+(:\d+)?", name or "x"):
        return None, f"'{target}': line-number ranges are not supported; mark a section instead"
    src = sources.get(path)
    if src is None:
        hint = ""
        if name and sources.where_else(name):
            hint = f" (a section '{name}' is in {', '.join(sources.where_else(name))})"
        return None, f"'{target}': no such file {path}{hint}"
    if not name:
        return _listing(path, None, src.lines, 0, len(src.lines)), None
    if name not in src.sections:
        others = [p for p in sources.where_else(name) if p != path]
        hint = f"; a section '{name}' is in {', '.join(others)}" if others else \
            f"; mark it with start/end '{_SCISSORS} [start:{name}]' comment lines"
        return None, f"'{target}': {path} has no section '{name}'{hint}"
    return src.sections[name], None


# --------------------------------------------------------------------------- regions

def render_region(section: Section, target: str, page: str, indent: str = "", lang: str | None = None) -> list[str]:
    """The region's lines (without newlines) for ``section`` shown in the Markdown file ``page``."""
    lang = lang or LANGUAGES.get(Path(section.path).suffix, "text")
    link = Path(os.path.relpath(section.path, Path(page).parent or ".")).as_posix()
    span = f"L{section.first}" if section.first == section.last else f"L{section.first}-L{section.last}"
    lines_word = f"line {section.first}" if section.first == section.last else \
        f"lines {section.first}–{section.last}"
    fence = "```"
    while fence in section.code:
        fence += "`"
    body = [f"<!-- include: {target} -->", "",
            f'{fence}{lang} linenums="{section.first}"', *section.code.split("\n"), fence, "",
            f"<small>[{section.path}, {lines_word}]({link}#{span})</small>", "",
            "<!-- /include -->"]
    return [indent + line if line.strip() else "" for line in body]


@dataclass
class Region:
    """One listing of a page: a region, or a directive still to be converted into one."""
    page: str
    line: int                  # 1-based line of the opening comment, or of the directive
    target: str                # path[:section]
    fresh: list[str] | None    # the lines it should have (None: the target does not resolve)
    current: list[str]         # the lines it has
    directive: bool = False    # a pymdownx directive, not converted yet
    moved_to: str | None = None  # the section is no longer in its file but, unambiguously, here

    @property
    def stale(self) -> bool:
        return self.fresh is not None and self.fresh != self.current

    @property
    def source(self) -> str:
        """The ``path[:section]`` shown: the target, or where its section moved."""
        return self.moved_to or self.target


@dataclass
class Span:
    """Lines ``start:stop`` (0-based) of a page, replaced by the regions of ``regions``."""
    start: int
    stop: int
    regions: list[Region]


def scan_page(sources: Sources, page: str, text: str) -> tuple[list[Span], list[str]]:
    """Find the regions and the directives of one Markdown page: (spans, errors)."""
    lines = text.split("\n")
    spans: list[Span] = []
    errors: list[str] = []

    def region(target, start, stop, indent, lang, directive):
        section, why = resolve(sources, target)
        moved = relocate(sources, target) if section is None else None
        if moved:   # the section moved to another file: follow it (--write rewrites the include line)
            section, why = resolve(sources, moved)
        if why:
            errors.append(f"{page}:{start + 1}: {why}")
        fresh = render_region(section, moved or target, page, indent, lang) if section else None
        return Region(page, start + 1, target, fresh, lines[start:stop], directive, moved)

    i = 0
    while i < len(lines):
        line = lines[i]
        f = FENCE.match(line)
        if f:   # a code fence: an include only if it holds nothing but directives
            char, length = f.group(2)[0], len(f.group(2))
            end = next((j for j in range(i + 1, len(lines)) if (g := FENCE.match(lines[j]))
                        and g.group(2)[0] == char and len(g.group(2)) >= length and not g.group(3).strip()),
                       len(lines))
            inner = [x for x in lines[i + 1:end] if x.strip()]
            directives = [DIRECTIVE.match(x) for x in inner]
            if inner and all(directives):
                info = f.group(3).split()
                found = [region(d.group(3), i, end + 1, f.group(1), info[0] if info else None, True)
                         for d in directives]
                spans.append(Span(i, min(end + 1, len(lines)), found))
            elif any(DIRECTIVE.match(x) or BARE_SCISSORS.match(x) for x in inner):
                errors.append(f"{page}:{i + 1}: a code fence mixes '{_SCISSORS}' directives with "
                              "other lines; give each directive a line (or a fence) of its own")
            i = end + 1
            continue
        m = REGION_START.match(line)
        if m:
            end = next((j for j in range(i + 1, len(lines)) if REGION_END.match(lines[j])), None)
            nxt = next((j for j in range(i + 1, len(lines)) if REGION_START.match(lines[j])), None)
            if end is None or (nxt is not None and nxt < end):
                errors.append(f"{page}:{i + 1}: region '{m.group(2)}' has no '<!-- /include -->' line")
                i += 1
                continue
            spans.append(Span(i, end + 1, [region(m.group(2), i, end + 1, m.group(1),
                                                  _fence_lang(lines[i + 1:end]), False)]))
            i = end + 1
            continue
        if REGION_END.match(line):
            errors.append(f"{page}:{i + 1}: '<!-- /include -->' without an opening '<!-- include: ... -->'")
        elif d := DIRECTIVE.match(line):
            spans.append(Span(i, i + 1, [region(d.group(3), i, i + 1, d.group(1), None, True)]))
        elif BARE_SCISSORS.match(line):
            errors.append(f"{page}:{i + 1}: multi-line '{_SCISSORS}' blocks are not supported; "
                          "write one directive per listing")
        i += 1
    return spans, errors


def _fence_lang(body: list[str]) -> str | None:
    """The language of a region's fence, kept when the region is regenerated."""
    for line in body:
        f = FENCE.match(line)
        if f:
            info = f.group(3).split()
            return info[0] if info else None
    return None


def refresh_text(sources: Sources, page: str, text: str) -> tuple[str, list[Region], list[str]]:
    """``text`` with every region regenerated and every directive converted: (text, regions, errors).

    A span whose target does not resolve is left as it is (the error says why)."""
    spans, errors = scan_page(sources, page, text)
    lines = text.split("\n")
    for span in reversed(spans):
        if any(r.fresh is None for r in span.regions):
            continue
        new: list[str] = []
        for k, r in enumerate(span.regions):
            new += ([""] if k else []) + r.fresh
        lines[span.start:span.stop] = new
    return "\n".join(lines), [r for s in spans for r in s.regions], errors


# --------------------------------------------------------------------------- the whole repository

def markdown_files(root: Path) -> list[str]:
    return list(_walk(root, {".md"}))


@dataclass
class Report:
    regions: list[Region]
    errors: list[str]
    changed: dict[str, str]            # page -> refreshed text, for the pages that differ
    unused: list[str]

    def problems(self) -> list[str]:
        out = list(self.errors)
        for r in self.regions:
            if r.moved_to and r.fresh is not None:
                out.append(f"{r.page}:{r.line}: section '{r.target}' moved to {r.moved_to}; "
                           "--write will follow it")
            elif r.directive and r.fresh is not None:
                out.append(f"{r.page}:{r.line}: directive '{r.target}' is not converted into a region yet")
            elif r.stale:
                out.append(f"{r.page}:{r.line}: region '{r.target}' is stale")
        return out + self.unused


def scan(root: Path = REPO) -> Report:
    """Check every Markdown file of the repository against the sources."""
    sources = Sources(root)
    regions: list[Region] = []
    errors: list[str] = []
    changed: dict[str, str] = {}
    for page in markdown_files(root):
        text = (root / page).read_text(encoding="utf-8")
        if _SCISSORS not in text and "<!-- include:" not in text and "<!-- /include" not in text:
            continue
        new, found, errs = refresh_text(sources, page, text)
        regions += found
        errors += errs
        if new != text:
            changed[page] = new
    for src in sources.files.values():
        errors += src.errors
    used = {(r.source.partition(":")[0], r.source.partition(":")[2]) for r in regions}
    unused = []
    for path, src in sorted(sources.files.items()):
        for name, (start, end) in src.marker_lines.items():
            if (path, name) not in used:
                unused.append(f"{path}:{start}: section '{name}' is shown on no page; remove its two "
                              f"marker lines ({start} and {end}) or include it")
    return Report(regions, errors, changed, unused)


def write(root: Path = REPO) -> tuple[Report, list[str]]:
    """Regenerate every region in place; returns the report and the pages written."""
    report = scan(root)
    for page, text in report.changed.items():
        path = root / page
        tmp = path.with_name(path.name + ".snippets-tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return report, sorted(report.changed)


def listing(root: Path = REPO) -> list[str]:
    report = scan(root)
    sources = Sources(root)
    shown: dict[str, list[str]] = {}
    for r in report.regions:
        shown.setdefault(r.source, []).append(f"{r.page}:{r.line}")
    out = []
    for path, src in sorted(sources.files.items()):
        for name, sec in src.sections.items():
            pages = shown.get(f"{path}:{name}", [])
            out.append(f"{path}:{name}  lines {sec.first}-{sec.last}  -> {', '.join(pages) or 'NOT SHOWN'}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python docs/snippets.py",
        description="Regenerate (--write) or check (--check) the code listings that the Markdown pages "
                    "include from marked sections of the modules.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate every region and convert new directives")
    mode.add_argument("--check", action="store_true", help="exit 1 if a region is stale or a marker is wrong")
    mode.add_argument("--list", action="store_true", help="every marked section and the pages that show it")
    parser.add_argument("--root", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.list:
        print("\n".join(listing(root)))
        return 0
    if args.write:
        report, written = write(root)
        for page in written:
            print(f"updated {page}")
        problems = report.errors + report.unused
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        print(f"{len(report.regions)} regions, {len(written)} files updated, {len(problems)} problems")
        return 1 if problems else 0
    problems = scan(root).problems()
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problems; fix the markers named above, then run: {COMMAND}", file=sys.stderr)
        return 1
    print("every region is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
