// Diagrams at their natural size, scrolling sideways when wider than the text column.
//
// mkdocs-material draws every ```mermaid block itself with the `mermaid` global that the
// site ships (docs/javascripts/vendor/, ADR 0003), after calling mermaid.initialize() with
// its own theme. By default mermaid shrinks a diagram to the column's width, which makes the
// labels of the pipeline flowcharts too small to read; this keeps the theme's options and
// turns the shrinking off (docs/stylesheets/extra.css lets the diagram scroll instead).
(function () {
  if (typeof mermaid === "undefined" || typeof mermaid.initialize !== "function") {
    return;
  }
  var initialize = mermaid.initialize.bind(mermaid);
  mermaid.initialize = function (config) {
    var merged = Object.assign({}, config || {});
    ["flowchart", "sequence", "class", "state", "er", "gantt", "journey"].forEach(function (kind) {
      merged[kind] = Object.assign({}, merged[kind] || {}, { useMaxWidth: false });
    });
    return initialize(merged);
  };
})();
