// Data card of a dataset version: the token-length histogram, one stepped line per split, as the share of that
// split's rows in each bin (so splits of different sizes compare). uPlot is vendored in static/vendor/uplot.
(function () {
  var COLOURS = { train: "#2f5bd3", validation: "#a35f00", test: "#1e7a46" };

  function draw() {
    var source = document.getElementById("token-hist");
    var box = document.getElementById("token-chart");
    if (!source || !box || !window.uPlot) return;
    var data = JSON.parse(source.textContent);
    if (!data.bins.length) return;
    var xs = data.bins.map(function (_, i) { return i; });
    xs.push(xs.length); // the right edge of the last bin
    var series = [{}];
    var columns = [xs];
    data.splits.forEach(function (split) {
      var counts = data.hist[split] || [];
      var total = counts.reduce(function (a, b) { return a + b; }, 0);
      if (!total) return;
      var shares = counts.map(function (n) { return (100 * n) / total; });
      shares.push(shares[shares.length - 1]);
      series.push({
        label: split, stroke: COLOURS[split] || "#5d6677", width: 2, points: { show: false },
        paths: window.uPlot.paths.stepped({ align: 1 }),
        value: function (u, v) { return v == null ? "—" : v.toFixed(1) + " %"; },
      });
      columns.push(shares);
    });
    if (series.length < 2) return;
    var opts = {
      width: Math.max(box.clientWidth, 300),
      height: 260,
      series: series,
      scales: { x: { time: false, range: [0, xs.length - 1] }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      axes: [
        { label: "tokens (bin)", splits: function () { return xs.slice(0, -1).map(function (x) { return x + 0.5; }); },
          values: function (u, ticks) { return ticks.map(function (t) { return data.bins[Math.floor(t)] || ""; }); } },
        { label: "% of the split's rows" },
      ],
    };
    series[0] = { label: "bin", value: function (u, v) { return v == null ? "—" : data.bins[Math.floor(v)] || ""; } };
    box.innerHTML = "";
    var chart = new window.uPlot(opts, columns, box);
    window.addEventListener("resize", function () {
      chart.setSize({ width: Math.max(box.clientWidth, 300), height: 260 });
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
