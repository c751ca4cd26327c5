// MathJax 3 settings for pymdownx.arithmatex in "generic" mode.
//
// Arithmatex wraps every formula in an element of class "arithmatex" and writes it with
// \( ... \) (inline) or \[ ... \] (display) delimiters, whatever the Markdown source used
// ($...$, $$...$$). MathJax is told to look only inside those elements, so a stray dollar
// sign elsewhere on a page is never treated as maths.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*",
    processHtmlClass: "arithmatex",
  },
};

// mkdocs-material can swap page content without a full reload; its document$ observable
// fires after each swap, so formulas on the new page are typeset too. On a plain page
// load (or if the theme offers no document$) MathJax typesets once at start-up by itself.
if (typeof document$ !== "undefined") {
  document$.subscribe(function () {
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
