// Curation dashboard: new cases per tag and day as a uPlot line chart (vendored in static/vendor/uplot).
(function () {
  var COLOURS = ["#2f5bd3", "#b42318", "#1e7a46", "#a35f00", "#7a3fc2", "#0f7b8a", "#c2417a", "#5d6677", "#6f8f00", "#d06a00"];

  function draw() {
    var source = document.getElementById("cases-per-tag");
    var box = document.getElementById("cases-chart");
    if (!source || !box || !window.uPlot) return;
    var data = JSON.parse(source.textContent);
    var names = Object.keys(data.series).sort();
    if (!names.length) return;
    var xs = data.dates.map(function (d) { return Date.parse(d + "T00:00:00Z") / 1000; });
    var series = [{}];
    var columns = [xs];
    names.forEach(function (name, i) {
      series.push({ label: name, stroke: COLOURS[i % COLOURS.length], width: 2, points: { show: false } });
      columns.push(data.series[name]);
    });
    var opts = {
      width: Math.max(box.clientWidth, 300),
      height: 260,
      series: series,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      axes: [{}, { label: "cases", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] }],
    };
    box.innerHTML = "";
    var chart = new window.uPlot(opts, columns, box);
    window.addEventListener("resize", function () {
      chart.setSize({ width: Math.max(box.clientWidth, 300), height: 260 });
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
