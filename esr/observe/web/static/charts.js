/* HMS-ESR charts: draws a run's timeline (esr/timeline.py) with uPlot.
 *
 * ESR.render(root, data)   build the page's panels and charts inside `root`
 * ESR.update(data)         new data for the same run: charts, tables and banner follow
 * ESR.follow(url)          server-sent events from `url`: each message is a whole timeline
 *
 * A page needs no script of its own (its Content-Security-Policy forbids inline script): this
 * file starts itself from the page's JSON blocks, #esr-data (the timeline) and, on the live
 * dashboard, #esr-config (events_url, and for a trainee decide_url and actions). Text from runs
 * (scenario names, decisions, reasons) is only ever set as textContent, never as HTML.
 *
 * Faults are shaded bands on every chart and trainee decisions vertical lines; each chart's
 * container carries data-points and data-bands so tests (and people) can read what is drawn.
 */
(function () {
  "use strict";

  var charts = [];
  var current = null;
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"];

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function hours(data) { return data.t.map(function (s) { return s / 3600; }); }

  function fmt(v, digits) {
    if (v === null || v === undefined) return "-";
    if (typeof v !== "number") return String(v);
    return Math.abs(v) >= 100 || Number.isInteger(v) ? v.toLocaleString("en") : v.toFixed(digits === undefined ? 3 : digits);
  }

  function simClock(data) {
    var start = data.run.sim_start ? new Date(data.run.sim_start) : null;
    var sim = data.clock.sim_seconds || 0;
    if (!start) return "h " + (sim / 3600).toFixed(2);
    return new Date(start.getTime() + sim * 1000).toISOString().slice(0, 16).replace("T", " ") +
      " (h " + (sim / 3600).toFixed(2) + ")";
  }

  /* shaded fault bands and decision lines, drawn under the series */
  function overlays() {
    return {
      hooks: {
        drawClear: function (u) {
          var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
          ctx.save();
          (current.faults || []).forEach(function (f, i) {
            var x0 = u.valToPos(f.start_sim / 3600, "x", true);
            var x1 = u.valToPos((f.end_sim === null ? current.clock.sim_seconds : f.end_sim) / 3600, "x", true);
            ctx.fillStyle = i % 2 ? "rgba(214,39,40,0.12)" : "rgba(255,127,14,0.15)";
            ctx.fillRect(Math.min(x0, x1), top, Math.abs(x1 - x0), height);
          });
          (current.decisions || []).forEach(function (d) {
            var x = u.valToPos(d.sim_time / 3600, "x", true);
            ctx.strokeStyle = "#6a3d9a";
            ctx.lineWidth = 2;
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
          });
          ctx.restore();
        }
      }
    };
  }

  function seriesOf(spec, data) {
    return spec.map(function (s) { return s.values(data); });
  }

  var SPECS = [
    {id: "chart-rate", title: "rate: planned journey starts/s vs achieved requests/s", series: [
      {label: "planned", values: function (d) { return d.rate_planned; }},
      {label: "achieved", values: function (d) { return d.rate_achieved; }}]},
    {id: "chart-latency", title: "latency per window (ms)", series: [
      {label: "p50", values: function (d) { return d.p50; }},
      {label: "p95", values: function (d) { return d.p95; }},
      {label: "p99", values: function (d) { return d.p99; }}]},
    {id: "chart-errors", title: "error rate by kind", series: null},
    {id: "chart-sla", title: "SLA deadlines decided (by window opened)", series: [
      {label: "met", values: function (d) { return d.sla_met; }},
      {label: "missed", values: function (d) { return d.sla_missed; }}]}
  ];

  function errorSpec(data) {
    var kinds = Object.keys(data.errors_by_kind || {}).sort();
    var spec = [{label: "all", values: function (d) { return d.error_rate; }}];
    kinds.forEach(function (k) { spec.push({label: k, values: function (d) { return (d.errors_by_kind || {})[k] || []; }}); });
    return spec;
  }

  function makeChart(box, spec, data, width) {
    var opts = {
      title: spec.title, width: width, height: 220,
      scales: {x: {time: false}},
      axes: [{label: "simulated hour"}, {}],
      series: [{label: "h"}].concat(spec.series.map(function (s, i) {
        return {label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false};
      })),
      plugins: [overlays()]
    };
    return new uPlot(opts, [hours(data)].concat(seriesOf(spec.series, data)), box);
  }

  function drawCharts(root, data) {
    charts.forEach(function (c) { c.plot.destroy(); });
    charts = [];
    var width = Math.max(320, Math.min(1100, (root.clientWidth || 1000) - 20));
    SPECS.forEach(function (base) {
      var spec = {id: base.id, title: base.title, series: base.series || errorSpec(data)};
      var box = root.querySelector("#" + spec.id);
      box.innerHTML = "";
      charts.push({spec: spec, box: box, plot: makeChart(box, spec, data, width),
                   kinds: Object.keys(data.errors_by_kind || {}).join(",")});
    });
  }

  function mark(data) {
    charts.forEach(function (c) {
      c.box.setAttribute("data-points", String(data.t.length));
      c.box.setAttribute("data-bands", String((data.faults || []).length));
      c.box.setAttribute("data-decisions", String((data.decisions || []).length));
    });
  }

  function table(rows, head) {
    var t = el("table");
    var tr = el("tr");
    head.forEach(function (h) { tr.appendChild(el("th", {}, h)); });
    t.appendChild(tr);
    rows.forEach(function (r) {
      var row = el("tr", r.attrs || {});
      r.cells.forEach(function (c) { row.appendChild(el("td", {}, c)); });
      t.appendChild(row);
    });
    return t;
  }

  function panels(root, data) {
    var banner = root.querySelector("#esr-verdict");
    if (data.verdict) {
      banner.className = "verdict " + data.verdict.verdict;
      banner.textContent = "VERDICT " + data.verdict.verdict + ": " + data.verdict.reason;
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    var c = data.clock || {};
    root.querySelector("#esr-clock").textContent =
      "sim " + simClock(data) + "  |  real " + (c.real_seconds === null || c.real_seconds === undefined ? "-" :
      c.real_seconds.toFixed(1) + " s") + "  |  warp " + data.run.time_warp + (c.state ? "  |  " + c.state : "");
    var a = root.querySelector("#esr-assertions");
    a.innerHTML = "";
    a.appendChild(table((data.assertions || []).map(function (x) {
      var state = x.holds === true ? "holds" : x.holds === false ? "FAILS" : "no data yet";
      return {attrs: {"data-holds": String(x.holds)}, cells: [x.assertion, fmt(x.observed), fmt(x.threshold), state]};
    }), ["assertion", "now", "threshold", "so far"]));
    var s = data.sla || {};
    root.querySelector("#esr-sla").textContent = "SLA deadlines: met " + fmt(s.met) + ", missed " + fmt(s.missed) +
      ", still open " + fmt(s.open);
    var comp = data.completeness || {};
    root.querySelector("#esr-completeness").textContent = Object.keys(comp).length ?
      "completeness: " + (comp.complete ? "complete" : "INCOMPLETE") + " (planned " + fmt(comp.arrivals_planned) +
      ", sent " + fmt(comp.requests_sent) + ", recorded " + fmt(comp.results_recorded) + ")" :
      "completeness: judged when the run ends";
    var f = root.querySelector("#esr-faults");
    f.innerHTML = "";
    (data.faults || []).forEach(function (x) {
      f.appendChild(el("li", {"data-fault": x.name}, x.fault + ": h " + (x.start_sim / 3600).toFixed(2) + " to " +
        (x.end_sim === null ? "now" : "h " + (x.end_sim / 3600).toFixed(2)) + (x.applied ? "" : " (NOT applied)") +
        (x.ended ? ", " + x.ended : "")));
    });
    var d = root.querySelector("#esr-decisions");
    d.innerHTML = "";
    (data.decisions || []).forEach(function (x) {
      var how = x.applied === true ? " (applied)" : x.applied === false ? " (NOT applied: " + x.detail + ")" : "";
      var after = x.hour_after ? "; the hour after: error rate " + fmt(x.hour_after.error_rate) + ", p95 " +
        fmt(x.hour_after.latency_p95_ms) + " ms, SLA met " + fmt(x.hour_after.sla_met) + " / missed " +
        fmt(x.hour_after.sla_missed) : "";
      d.appendChild(el("li", {"data-decision": x.decision}, "h " + (x.sim_time / 3600).toFixed(2) + " " + x.author +
        ": " + x.decision + how + after));
    });
  }

  var ESR = {
    render: function (root, data) {
      current = data;
      root.innerHTML = [  /* fixed markup only: what a run says goes in as text below */
        '<div id="esr-verdict" class="verdict" hidden></div>',
        '<h1 id="esr-title"></h1>',
        '<p id="esr-clock" class="clock"></p>',
        '<div id="chart-rate" class="chart"></div><div id="chart-latency" class="chart"></div>',
        '<div id="chart-errors" class="chart"></div><div id="chart-sla" class="chart"></div>',
        '<p id="esr-sla"></p><h2>assertions</h2><div id="esr-assertions"></div>',
        '<p id="esr-completeness"></p><h2>faults</h2><ul id="esr-faults"></ul>',
        '<h2>decisions</h2><ul id="esr-decisions"></ul>'
      ].join("");
      var title = root.querySelector("#esr-title");
      title.textContent = (data.run.scenario || "run") + " ";
      title.appendChild(el("small", {}, data.run.run_id || ""));
      drawCharts(root, data);
      panels(root, data);
      mark(data);
      ESR.root = root;
    },
    update: function (data) {
      var kinds = Object.keys(data.errors_by_kind || {}).join(",");
      current = data;
      if (charts.length !== SPECS.length || charts[2].kinds !== kinds) {
        drawCharts(ESR.root, data);
      } else {
        charts.forEach(function (c) { c.plot.setData([hours(data)].concat(seriesOf(c.spec.series, data))); });
      }
      panels(ESR.root, data);
      mark(data);
    },
    /* training mode: a form that records decisions on the run's timeline */
    decide: function (url, actions) {
      var box = document.getElementById("esr-decide");
      var form = el("form", {id: "esr-decide-form"});
      var text = el("input", {id: "esr-decision", name: "decision", size: "40", required: "required",
                              placeholder: "what you decide, e.g. page on-call, or add_caseworkers(5)"});
      var author = el("input", {id: "esr-author", name: "author", size: "16", placeholder: "your name"});
      form.appendChild(text);
      form.appendChild(author);
      form.appendChild(el("button", {type: "submit", id: "esr-decide-submit"}, "record decision"));
      var status = el("span", {id: "esr-decide-status"});
      function send(decision) {
        fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({decision: decision, author: author.value || "trainee"})})
          .then(function (r) { return r.json().then(function (b) { return [r.status, b]; }); })
          .then(function (res) {
            status.textContent = res[0] === 201 ? "recorded at h " + (res[1].sim_time / 3600).toFixed(2) +
              (res[1].applied === true ? ", applied" : res[1].applied === false ? ", NOT applied" : "") :
              "refused: " + (res[1].error || res[0]);
          });
      }
      form.addEventListener("submit", function (e) { e.preventDefault(); send(text.value); text.value = ""; });
      box.appendChild(form);
      (actions || []).forEach(function (a) {
        var b = el("button", {type: "button", "data-action": a}, a);
        b.addEventListener("click", function () { send(a); });
        box.appendChild(b);
      });
      box.appendChild(status);
    },
    follow: function (url) {
      var source = new EventSource(url);
      source.addEventListener("timeline", function (e) { ESR.update(JSON.parse(e.data)); });
      source.addEventListener("end", function () { source.close(); });
      return source;
    }
  };
  window.ESR = ESR;

  function boot() {
    var root = document.getElementById("esr"), data = document.getElementById("esr-data");
    if (!root || !data) return;
    ESR.render(root, JSON.parse(data.textContent));
    var config = document.getElementById("esr-config");
    if (!config) return;
    var c = JSON.parse(config.textContent);
    if (c.decide_url) ESR.decide(c.decide_url, c.actions || []);
    if (c.events_url) ESR.follow(c.events_url);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot); else boot();
})();
