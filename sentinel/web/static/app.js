// Niceties only; every page works without this script.
// 1. Durations of running runs tick every second.
// 2. Drag across the timeline to zoom (it sets ?from=&to=, the same as the zoom links).
// 3. A #L<n> link to a line not on this page reloads the page around that line.
(function () {
  "use strict";
  function fmt(seconds) {
    var s = Math.max(0, Math.round(seconds)), m = Math.floor(s / 60), h = Math.floor(m / 60);
    if (h) return h + "h " + String(m % 60).padStart(2, "0") + "m";
    if (m) return m + "m " + String(s % 60).padStart(2, "0") + "s";
    return s + "s";
  }
  function tick() {
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var since = Date.parse(el.getAttribute("data-since"));
      if (!isNaN(since)) el.textContent = "running " + fmt((Date.now() - since) / 1000);
    });
  }
  function brush() {
    var svg = document.getElementById("timeline"), box = document.getElementById("tl-brush");
    if (!svg || !box) return;
    var start = +svg.dataset.startMs, end = +svg.dataset.endMs, x0 = +svg.dataset.x0,
        plot = +svg.dataset.plotW, width = +svg.dataset.width, from = null;
    function x(evt) {
      var r = svg.getBoundingClientRect();
      return Math.min(x0 + plot, Math.max(x0, (evt.clientX - r.left) * width / r.width));
    }
    function at(px) { return new Date(start + (px - x0) / plot * (end - start)).toISOString(); }
    svg.addEventListener("mousedown", function (evt) {
      if (evt.target.closest("a")) return;
      from = x(evt); box.setAttribute("x", from); box.setAttribute("width", 0);
      box.setAttribute("visibility", "visible");
    });
    svg.addEventListener("mousemove", function (evt) {
      if (from === null) return;
      var to = x(evt);
      box.setAttribute("x", Math.min(from, to)); box.setAttribute("width", Math.abs(to - from));
    });
    window.addEventListener("mouseup", function (evt) {
      if (from === null) return;
      var to = x(evt), a = Math.min(from, to), b = Math.max(from, to);
      from = null; box.setAttribute("visibility", "hidden");
      if (b - a < 4) return;
      var url = new URL(window.location.href);
      url.searchParams.set("from", at(a)); url.searchParams.set("to", at(b));
      window.location.assign(url.toString());
    });
  }
  function lineLink() {
    var m = /^#L(\d+)$/.exec(window.location.hash);
    if (!m || document.getElementById("L" + m[1])) return;
    var url = new URL(window.location.href);
    if (url.searchParams.get("line") === m[1]) return;
    url.searchParams.set("tab", "logs"); url.searchParams.set("line", m[1]);
    url.searchParams.delete("cursor"); url.searchParams.delete("level");
    window.location.replace(url.toString());
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick(); setInterval(tick, 1000); brush(); lineLink();
    window.addEventListener("hashchange", lineLink);
  });
})();
