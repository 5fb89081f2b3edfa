// The UI's own few lines (no inline script: the Content-Security-Policy allows none).
(function () {
  "use strict";
  // "/" jumps to the tree's name filter, as in many consoles.
  document.addEventListener("keydown", function (ev) {
    var t = ev.target;
    if (ev.key === "/" && !(t instanceof HTMLInputElement || t instanceof HTMLSelectElement ||
        t instanceof HTMLTextAreaElement)) {
      var f = document.getElementById("filter-name");
      if (f) { ev.preventDefault(); f.focus(); }
    }
  });
  // A followed log keeps its end in view unless the reader scrolled up.
  document.addEventListener("htmx:sseBeforeMessage", function (ev) {
    var log = document.getElementById("log");
    if (log) { log.dataset.stick = String(log.scrollTop + log.clientHeight >= log.scrollHeight - 8); }
  });
  document.addEventListener("htmx:sseMessage", function () {
    var log = document.getElementById("log");
    if (log && log.dataset.stick !== "false") { log.scrollTop = log.scrollHeight; }
  });
  // An action's answer is shown even when it is a refusal (htmx leaves 4xx unswapped).
  document.addEventListener("htmx:beforeSwap", function (ev) {
    if (ev.detail.xhr.status >= 400 && ev.detail.target && ev.detail.target.id === "flash") {
      ev.detail.shouldSwap = true;
      ev.detail.isError = false;
    }
  });
  // Keep the <details> a reader closed closed across live refreshes of the tree.
  var closed = new Set();
  document.addEventListener("toggle", function (ev) {
    var d = ev.target;
    if (!(d instanceof HTMLDetailsElement)) { return; }
    var id = d.closest("li") && d.querySelector("summary a.name");
    if (!id) { return; }
    if (d.open) { closed.delete(id.id); } else { closed.add(id.id); }
  }, true);
  document.addEventListener("htmx:afterSwap", function () {
    closed.forEach(function (id) {
      var a = document.getElementById(id);
      var d = a && a.closest("details");
      if (d) { d.open = false; }
    });
  });
  // The dot in the header says whether live updates arrive (the stream reconnects itself).
  document.addEventListener("htmx:sseOpen", function () {
    document.body.classList.remove("offline");
  });
  document.addEventListener("htmx:sseError", function () {
    document.body.classList.add("offline");
  });
  document.body && document.body.classList.add("js");
})();
