// Fine-tune job page: train/val loss, lr, grad_norm and tokens/s drawn with uPlot (vendored in static/vendor/uplot)
// from the job's metrics.json, refreshed every 3 s while the job runs and stopped once it is terminal.
// The compare page: the train/val loss of several jobs overlaid on one chart.
(function () {
  var COLOURS = ["#2f5bd3", "#a35f00", "#1e7a46", "#b0245a", "#6b3fb3", "#00818a", "#5d6677", "#c23b22"];
  var TERMINAL = { succeeded: 1, failed: 1, cancelled: 1 };
  var STEP_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];  // whole steps

  // y-axis ticks readable at every scale: 2e-4 for a learning rate, 6.52 for a loss, 12,000 for tokens/s
  function tick(v) {
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (a < 0.01 || a >= 1e6) return v.toExponential(1);
    if (a >= 1000) return Math.round(v).toLocaleString("en");
    return String(Number(v.toPrecision(3)));
  }

  // series: [{label, x: [...], y: [...]}] -> uPlot columns on the union of their steps
  function columns(series) {
    var steps = {};
    series.forEach(function (s) { s.x.forEach(function (x) { steps[x] = 1; }); });
    var xs = Object.keys(steps).map(Number).sort(function (a, b) { return a - b; });
    var cols = [xs];
    series.forEach(function (s) {
      var at = {};
      s.x.forEach(function (x, i) { at[x] = s.y[i]; });
      cols.push(xs.map(function (x) { return x in at ? at[x] : null; }));
    });
    return cols;
  }

  function plot(box, series, old) {
    if (!window.uPlot || !box) return old;
    series = series.filter(function (s) { return s.x.length; });
    if (!series.length) { box.textContent = "No points yet."; return null; }
    var data = columns(series);
    if (old && old._labels === series.map(function (s) { return s.label; }).join()) { old.setData(data); return old; }
    box.innerHTML = "";
    var opts = {
      title: box.getAttribute("aria-label") || "",
      width: Math.max(box.clientWidth, 300), height: 220,
      scales: { x: { time: false } },
      axes: [{ label: "step", incrs: STEP_INCRS }, { values: function (u, ticks) { return ticks.map(tick); }, size: 60 }],
      series: [{ label: "step" }].concat(series.map(function (s, i) {
        return { label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true, points: { show: false } };
      })),
    };
    var chart = new window.uPlot(opts, data, box);
    chart._labels = series.map(function (s) { return s.label; }).join();
    return chart;
  }

  function jobPage() {
    var source = document.getElementById("finetune-charts");
    if (!source) return;
    var url = source.getAttribute("data-url");
    var boxes = Array.prototype.slice.call(document.querySelectorAll("[data-chart]"));
    var charts = {};
    var names = boxes.map(function (b) { return b.getAttribute("data-names"); }).join(",");
    var timer = null;
    function refresh() {
      fetch(url + "?names=" + encodeURIComponent(names), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (body) {
          boxes.forEach(function (box) {
            var series = box.getAttribute("data-names").split(",").map(function (n) {
              var s = body.series[n] || { x: [], y: [] };
              return { label: n, x: s.x, y: s.y };
            });
            charts[box.id] = plot(box, series, charts[box.id]);
          });
          if (TERMINAL[body.status] && timer) { clearInterval(timer); timer = null; }
        });
    }
    refresh();
    if (source.getAttribute("data-terminal") !== "1") timer = setInterval(refresh, 3000);
  }

  function comparePage() {
    var jobsEl = document.getElementById("compare-jobs");
    var box = document.getElementById("compare-chart");
    var src = document.getElementById("compare-source");
    if (!jobsEl || !box || !src) return;
    var jobs = JSON.parse(jobsEl.textContent);
    var template = src.getAttribute("data-url-template");
    Promise.all(jobs.map(function (job) {
      var url = template.replace("/0/", "/" + encodeURIComponent(job.id) + "/");
      return fetch(url + "?names=train_loss,val_loss", { credentials: "same-origin" }).then(function (r) { return r.json(); })
        .then(function (body) {
          return ["train_loss", "val_loss"].map(function (n) {
            var s = body.series[n] || { x: [], y: [] };
            return { label: "#" + job.id + " " + n, x: s.x, y: s.y };
          });
        });
    })).then(function (lists) { plot(box, [].concat.apply([], lists), null); });
  }

  document.addEventListener("DOMContentLoaded", function () { jobPage(); comparePage(); });
})();
