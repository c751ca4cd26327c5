"""The docs site as a reader sees it: built, served on 127.0.0.1, loaded in headless Chromium
with the network shut off (ADR 0003).

Every lesson page (the introduction and each built phase's README) must show its code
listings (the modules' current code), rendered formulas (MathJax output, no raw ``\\(``
or ``\\[``), its mermaid diagrams drawn as SVG, load every resource it asks for, and ask
nothing of another host. A static pass over every built page checks that none references
a script, style, font, image or frame on another host.

Needs Debian's ``chromium`` and ``chromium-driver`` and ``selenium`` (the ``browser``
extra): skipped without them locally, a failure under ``CI=true``.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import require_chromium, serve_directory, shadow_svg_sizes
from tests.browser import browser, browser_session  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]


def _load_snippets():
    spec = importlib.util.spec_from_file_location("docs_snippets_for_site_test", REPO / "docs" / "snippets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


snippets = _load_snippets()


def lesson_pages() -> list[tuple[str, str]]:
    """(Markdown source, URL path) of the introduction and of every built phase's lesson."""
    pages = [("docs/start/intro.md", "docs/start/intro/")]
    for readme in sorted((REPO / "phases").glob("phase*/README.md")):
        if "not built yet" not in readme.read_text(encoding="utf-8").lower():
            pages.append((readme.relative_to(REPO).as_posix(), f"phases/{readme.parent.name}/"))
    return pages


PAGES = lesson_pages()


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    """The site as ``mkdocs build --strict`` writes it from the working tree."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def site_url(built_site):
    require_chromium()   # before serving: skip (or fail under CI) early
    with serve_directory(built_site) as url:
        yield url


def _outside_code(markdown: str) -> str:
    """The page's Markdown without fenced code, inline code and generated regions."""
    text = re.sub(r"<!-- include: .*?<!-- /include -->", "", markdown, flags=re.S)
    text = re.sub(r"^([ \t]*)(`{3,}|~{3,}).*?^\1\2[ \t]*$", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _expects_math(markdown: str) -> bool:
    return bool(re.search(r"\$\$|\$[^\s$][^$\n]*\$|\\\(|\\\[", _outside_code(markdown)))


def _mermaid_count(markdown: str) -> int:
    text = re.sub(r"<!-- include: .*?<!-- /include -->", "", markdown, flags=re.S)
    return len(re.findall(r"^[ \t]*```mermaid[ \t]*$", text, flags=re.M))


@pytest.fixture(scope="module")
def sources():
    return snippets.Sources(REPO)


@pytest.mark.parametrize("source,path", PAGES, ids=[p for _, p in PAGES])
def test_lesson_page_in_a_browser_offline(browser, site_url, sources, source, path):
    markdown = (REPO / source).read_text(encoding="utf-8")
    browser.open(site_url + path)
    assert browser.js("return document.title"), "the page did not load"

    # 1. every code listing shows the module's current code (not a directive, not a stale copy)
    spans, errors = snippets.scan_page(sources, source, markdown)
    assert not errors, errors
    regions = [r for s in spans for r in s.regions]
    shown = browser.js("return [...document.querySelectorAll('.md-content td.code code, .md-content pre > code')]"
                       ".map(e => e.innerText)")
    shown = {"\n".join(line.rstrip() for line in c.strip("\n").split("\n")) for c in shown}
    for region in regions:
        section, why = snippets.resolve(sources, region.source)
        assert section is not None, why
        assert section.code in shown, f"listing {region.source} is missing or differs from the module"
    assert snippets._SCISSORS not in browser.text(".md-content"), "a raw snippet directive is shown"

    # 2. formulas typeset by MathJax: every arithmatex element holds MathJax output
    counts = browser.wait_for(
        "const a = [...document.querySelectorAll('.md-content .arithmatex')];"
        "const done = a.filter(e => e.querySelector('mjx-container')).length;"
        "return a.length === done && (window.MathJax && MathJax.startup && MathJax.startup.document) ? "
        "[a.length, done] : null;", timeout=60, what="MathJax to typeset every formula")
    if _expects_math(markdown):
        assert counts[0] > 0, "the page has formulas in its source but none on the page"
    prose = browser.js("const c = document.querySelector('.md-content article').cloneNode(true);"
                       "c.querySelectorAll('pre, code, mjx-container, script').forEach(e => e.remove());"
                       "return c.textContent;")
    raw = re.findall(r".{0,30}(?:\\\(|\\\)|\\\[|\\\]|\$\$).{0,30}", prose)
    assert not raw, f"raw TeX left on the page: {raw[:5]}"

    # 3. mermaid diagrams drawn as SVG (in mkdocs-material's closed shadow roots)
    expected = _mermaid_count(markdown)
    if expected:
        browser.wait_for(f"return document.querySelectorAll('.md-content div.mermaid').length === {expected}"
                         " && !document.querySelector('.md-content pre.mermaid')",
                         timeout=60, what=f"{expected} mermaid diagram(s) to be drawn")
        sizes = shadow_svg_sizes(browser, "mermaid")
        assert len(sizes) == expected and all(n > 5 for n in sizes), f"diagrams not drawn as SVG: {sizes}"
        heights = browser.js("return [...document.querySelectorAll('.md-content div.mermaid')]"
                             ".map(e => e.getBoundingClientRect().height)")
        assert all(h > 40 for h in heights), f"a diagram has no height: {heights}"

    # 4. nothing asked of another host, and every local resource loaded
    assert browser.outside == [], f"requests to other hosts: {browser.outside}"
    assert browser.failed_requests() == [], browser.failed_requests()
    assert browser.console_errors() == []


EXTERNAL = re.compile(r"""<(script|link|img|iframe|source|video|audio|embed|object)\b[^>]*?"""
                      r"""\b(src|href|data|srcset)\s*=\s*["']?\s*(https?:)?//""", re.I)


def test_no_page_loads_anything_from_another_host(built_site):
    """A static pass over every built page: no script, style, font, image or frame from elsewhere.
    (Links a reader clicks, <a href="https://...">, are fine.)"""
    offenders = []
    for page in sorted(built_site.rglob("*.html")):
        html = page.read_text(encoding="utf-8", errors="replace")
        for m in EXTERNAL.finditer(html):
            offenders.append(f"{page.relative_to(built_site)}: {m.group(0)[:120]}")
        if re.search(r"@import\s+url\(\s*['\"]?(https?:)?//|fonts\.googleapis|cdn\.jsdelivr|unpkg\.com", html):
            offenders.append(f"{page.relative_to(built_site)}: a CDN reference")
    assert not offenders, "\n".join(offenders[:20])


def test_the_shipped_scripts_are_in_the_site(built_site):
    for rel in ("docs/javascripts/vendor/mathjax/tex-mml-chtml.js",
                "docs/javascripts/vendor/mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
                "docs/javascripts/vendor/mermaid/mermaid.min.js"):
        assert (built_site / rel).is_file(), f"{rel} is not in the built site"


def test_the_shipped_scripts_name_no_cdn(built_site):
    """MathJax's speech code has CDN fallbacks compiled in; docs/assets.py rewrites them after the
    integrity check (they never run: the engine's maps come from the site), so no file names one."""
    vendor = built_site / "docs" / "javascripts" / "vendor"
    named = [f"{f.relative_to(vendor)}: {m.group(0)}" for f in sorted(vendor.rglob("*.js"))
             for m in re.finditer(r"https?://(cdn\.jsdelivr\.net|unpkg\.com|cdnjs\.cloudflare\.com)[^\"']{0,40}",
                                  f.read_text(encoding="utf-8", errors="replace"))]
    assert not named, "\n".join(named[:10])


SPEECH_PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script>window.MathJax = {options: {menuOptions: {settings: {explorer: true}}}};</script>
<script src="docs/javascripts/vendor/mathjax/tex-mml-chtml.js"></script>
</head><body><p>\\(x^2 + 1\\)</p></body></html>"""


def test_math_speech_works_offline(browser, site_url, built_site):
    """A reader who turns on MathJax's accessibility explorer (in its menu) hears formulas read
    out: the speech rule engine's maps come from the site. (The engine's built-in fallback
    names a CDN; MathJax points it at its own folder, and this checks that nothing leaves.)"""
    (built_site / "speech-check.html").write_text(SPEECH_PAGE, encoding="utf-8")
    browser.open(site_url + "speech-check.html")
    speech = browser.wait_for("const c = document.querySelector('mjx-container');"
                              "return c && c.getAttribute('aria-label');", timeout=60, what="the formula's speech")
    assert speech == "x squared plus 1"
    assert any(r.endswith("/sre/mathmaps/en.json") for r in browser.requests()), browser.requests()
    assert browser.outside == []
    assert browser.failed_requests() == []


@pytest.mark.slow
def test_every_page_of_the_site_renders_offline(browser, site_url, built_site):
    """All pages, not only the lessons (decision records and comparisons have formulas too):
    formulas typeset, no raw TeX or directive, every local resource loaded, nothing asked of
    another host, no console error. About a second a page."""
    pages = sorted(p.relative_to(built_site).parent.as_posix() for p in built_site.rglob("index.html"))
    problems = []
    for page in pages:
        url = site_url + ("" if page == "." else page + "/")
        browser.open(url)
        try:
            browser.wait_for("const a = [...document.querySelectorAll('.md-content .arithmatex')];"
                             "return a.every(e => e.querySelector('mjx-container'))"
                             " && !document.querySelector('.md-content pre.mermaid');",
                             timeout=30, what="formulas and diagrams")
        except TimeoutError as e:
            problems.append(f"{page}: {e}")
        prose = browser.js("const c = document.querySelector('.md-content article');"
                           "if (!c) return ''; const d = c.cloneNode(true);"
                           "d.querySelectorAll('pre, code, mjx-container, script').forEach(e => e.remove());"
                           "return d.textContent;")
        raw = re.findall(r".{0,20}(?:\\\(|\\\[|\$\$|" + re.escape(snippets._SCISSORS) + r").{0,20}", prose)
        if raw:
            problems.append(f"{page}: raw TeX or directive: {raw[:3]}")
        for what, found in (("asked another host", browser.outside), ("failed", browser.failed_requests()),
                            ("console error", browser.console_errors())):
            if found:
                problems.append(f"{page}: {what}: {found[:3]}")
    assert len(pages) > 20
    assert not problems, "\n".join(problems)
