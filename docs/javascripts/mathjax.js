// MathJax for pymdownx.arithmatex (generic mode); the page renders the TeX offline only when
// MathJax is reachable, else the TeX source stays readable.
window.MathJax = {
  tex: { inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true },
  options: { ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex" },
};
