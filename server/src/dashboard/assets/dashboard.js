// fieldsync dashboard: draws the charts described in #charts with Chart.js
// (embedded in the server binary) and makes tables sortable.
(function () {
  "use strict";
  var spec = document.getElementById("charts");
  if (spec && window.Chart) {
    JSON.parse(spec.textContent).forEach(function (s) {
      var canvas = document.getElementById(s.id);
      if (!canvas) { return; }
      var scales = s.stacked ? { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } : { y: { beginAtZero: s.type === "bar" } };
      if (s.datasets.some(function (d) { return d.yAxisID === "y1"; })) {
        scales.y1 = { position: "right", min: -100, max: 100, grid: { drawOnChartArea: false } };
      }
      new window.Chart(canvas, {
        type: s.type,
        data: { labels: s.labels, datasets: s.datasets },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          spanGaps: true,
          scales: scales,
          plugins: { legend: { display: s.datasets.length > 1 } }
        }
      });
      canvas.setAttribute("data-rendered", "true");
    });
  }
  function key(td) {
    var t = td ? td.textContent.trim() : "";
    var n = Number(t);
    return t !== "" && t !== "-" && !isNaN(n) ? { n: n } : { s: t };
  }
  function compare(a, b) {
    if ("n" in a && "n" in b) { return a.n - b.n; }
    if ("n" in a) { return -1; }
    if ("n" in b) { return 1; }
    return a.s.localeCompare(b.s);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, i) {
      th.setAttribute("tabindex", "0");
      th.setAttribute("role", "button");
      var sort = function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("thead th").forEach(function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (x, y) {
          var c = compare(key(x.cells[i]), key(y.cells[i]));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
    });
  });
})();
