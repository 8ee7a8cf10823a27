// latbench dashboard: draws what /dashboard/data.json returns (or, in a report, the data inlined
// as window.LATBENCH_REPORT, one view per device). All figures are computed on the server; this
// file only draws them and keeps the view (device, filters, log axis) in the controls.
"use strict";

const MARKERS = {
  measured: { symbol: "circle", color: "#1c7ed6" },
  published: { symbol: "diamond-open", color: "#868e96" },
  predicted: { symbol: "triangle-up-open", color: "#7048e8" },
  user: { symbol: "star", color: "#e8590c" },
};
const report = window.LATBENCH_REPORT || null;
const $ = (sel) => document.querySelector(sel);
const checked = (name) =>
  [...document.querySelectorAll(`input[name=${name}]:checked`)].map((i) => i.value);

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function query() {
  const params = new URLSearchParams();
  if ($("#device").value) params.set("device", $("#device").value);
  const all = (name) => document.querySelectorAll(`input[name=${name}]`).length;
  // every box checked means no filter: new families and kinds then show up by themselves
  for (const name of ["kind", "family", "precision"]) {
    const on = checked(name);
    if (on.length < all(name)) on.forEach((v) => params.append(name, v));
  }
  return params;
}

const EMPTY = {
  points: [],
  frontier: {},
  published_front: {},
  unplotted: [],
  no_prediction: [],
  sources: [],
  ranking: { devices: [], ranks: {}, kinds: {}, flips: [] },
};

async function load() {
  if (report) return report[$("#device").value];
  const unticked = (name) => document.querySelectorAll(`input[name=${name}]`).length && !checked(name).length;
  if (unticked("kind") || unticked("family") || unticked("precision")) return EMPTY; // nothing selected, nothing shown
  const response = await fetch(`/dashboard/data.json?${query()}`);
  if (!response.ok) throw new Error(`data.json: ${response.status}`);
  return response.json();
}

const fmt = (v, digits = 3) => (v == null ? "" : Number(v).toFixed(digits));
const millions = (v, scale) => (v == null ? "" : (v / scale).toFixed(2));

function hover(p) {
  const ci = p.latency_low != null ? ` [${fmt(p.latency_low)}, ${fmt(p.latency_high)}]` : "";
  return [
    `<b>${escapeHtml(p.label)}</b> (${p.kind}, ${p.precision})`,
    `family: ${escapeHtml(p.family || "?")}`,
    `params: ${millions(p.params, 1e6) || "?"} M, MACs: ${millions(p.macs, 1e9) || "?"} G`,
    `latency: ${fmt(p.latency_ms)} ms${ci}`,
    `  ${escapeHtml(p.latency_source)}`,
    `top-1: ${p.top1}%`,
    `  ${escapeHtml(p.top1_source)}`,
  ].join("<br>");
}

function scatterTraces(data, device) {
  const points = data.points.filter((p) => p.device === device);
  // published context is many points: only those on their front carry a name on the chart
  const named = new Set([...(data.published_front[device] || [])]);
  const label = (p) => (p.kind !== "published" || named.has(p.key) ? p.label : "");
  const traces = Object.entries(MARKERS).map(([kind, marker]) => {
    const mine = points.filter((p) => p.kind === kind);
    return {
      name: kind,
      type: "scatter",
      mode: "markers+text",
      x: mine.map((p) => p.latency_ms),
      y: mine.map((p) => p.top1),
      text: mine.map(label),
      customdata: mine.map((p) => p.key),
      textposition: "top center",
      textfont: { size: 10, color: "#495057" },
      hovertext: mine.map(hover),
      hoverinfo: "text",
      marker: {
        // a quantized point is the open form of its kind's marker
        symbol: mine.map((p) => (["int8", "w8"].includes(p.precision) ? `${marker.symbol}-open` : marker.symbol)),
        color: marker.color,
        size: kind === "user" ? 14 : 10,
      },
      error_x: {
        type: "data",
        symmetric: false,
        array: mine.map((p) => (p.latency_high == null ? 0 : p.latency_high - p.latency_ms)),
        arrayminus: mine.map((p) => (p.latency_low == null ? 0 : p.latency_ms - p.latency_low)),
        color: marker.color,
        thickness: 1.2,
      },
      visible: mine.length ? true : "legendonly", // the kind stays in the legend with no points
    };
  });
  const byKey = Object.fromEntries(points.map((p) => [p.key, p]));
  const line = (keys, name, style) => ({
    name,
    type: "scatter",
    mode: "lines",
    x: keys.map((k) => byKey[k].latency_ms),
    y: keys.map((k) => byKey[k].top1),
    line: { shape: "hv", ...style },
    hoverinfo: "skip",
  });
  traces.push(line(data.frontier[device] || [], "Pareto frontier", { color: "#d9480f", width: 2 }));
  traces.push(
    line(data.published_front[device] || [], "published front", {
      color: "#adb5bd",
      width: 1.5,
      dash: "dot",
    }),
  );
  return traces;
}

function drawScatter(data, device) {
  const layout = {
    title: { text: `latency vs top-1 on ${device}` },
    xaxis: { title: { text: "median latency (ms)" }, type: $("#logx").checked ? "log" : "linear" },
    yaxis: { title: { text: "ImageNet-1k top-1 (%)" } },
    hovermode: "closest",
    legend: { orientation: "h", y: -0.2 },
    margin: { t: 40, r: 20 },
  };
  Plotly.react("scatter", scatterTraces(data, device), layout, {
    displaylogo: false,
    responsive: true,
  });
}

function listFront(target, keys, byKey) {
  target.replaceChildren(
    ...keys.map((key) => {
      const p = byKey[key];
      const li = document.createElement("li");
      li.dataset.key = key;
      li.dataset.model = p.label;
      li.textContent = `${p.label} (${p.kind}): ${fmt(p.latency_ms)} ms, ${p.top1}%`;
      return li;
    }),
  );
}

function cell(row, text, href) {
  const td = row.insertCell();
  if (href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    td.append(a);
  } else td.textContent = text;
}

function drawTables(data, device) {
  const points = data.points.filter((p) => p.device === device);
  const byKey = Object.fromEntries(points.map((p) => [p.key, p]));
  listFront($("#frontier-list"), data.frontier[device] || [], byKey);
  listFront($("#published-front-list"), data.published_front[device] || [], byKey);
  const body = $("#points tbody");
  body.replaceChildren();
  for (const p of points) {
    const row = body.insertRow();
    row.dataset.key = p.key;
    const page = p.spec_hash && !report ? `/dashboard/models/${p.spec_hash}` : null;
    cell(row, p.label, page);
    cell(row, p.kind);
    cell(row, p.family || "");
    const ci = p.latency_low != null ? ` [${fmt(p.latency_low)}, ${fmt(p.latency_high)}]` : "";
    cell(row, fmt(p.latency_ms) + ci);
    cell(row, String(p.top1));
    cell(row, millions(p.params, 1e6));
    cell(row, millions(p.macs, 1e9));
    const same = p.latency_source.startsWith(p.top1_source); // a published row cites one table
    cell(row, same ? p.latency_source : `top-1: ${p.top1_source}; latency: ${p.latency_source}`);
  }
  const loose = data.unplotted.filter((u) => u.device === device);
  $("#unplotted").textContent = loose.length
    ? "Measured, no top-1 known for what was measured (attach one: latbench accuracy set): " +
      loose
        .map((u) => `${u.label} ${fmt(u.latency_ms)} ms` + (u.reason.startsWith("no top-1") ? "" : ` (${u.reason})`))
        .join(", ")
    : "";
  const abstained = data.no_prediction.filter((n) => n.device === device);
  $("#no-prediction").textContent = abstained.length
    ? "No prediction (outside the predictor's training domain): " +
      abstained.map((n) => `${n.model} (${n.reason})`).join(", ")
    : "";
  $("#sources").replaceChildren(
    ...data.sources.map((s) => Object.assign(document.createElement("li"), { textContent: s })),
  );
  document.querySelectorAll(".device-name").forEach((e) => (e.textContent = device));
}

function drawRanks(ranking) {
  const flipped = new Set(ranking.flips.flatMap((f) => [f.faster, f.slower]));
  const traces = Object.entries(ranking.ranks).map(([model, ranks]) => {
    const devices = ranking.devices.filter((d) => d in ranks);
    const hot = flipped.has(model);
    return {
      name: model,
      type: "scatter",
      mode: "lines+markers+text",
      x: devices,
      y: devices.map((d) => ranks[d]),
      text: devices.map((d, i) => (i === devices.length - 1 ? model : "")),
      textposition: "middle right",
      hovertext: devices.map((d) => `${model}: rank ${ranks[d]} on ${d} (${ranking.kinds[model][d]})`),
      hoverinfo: "text",
      line: { width: hot ? 3 : 1, color: hot ? undefined : "#ced4da" },
      opacity: hot ? 1 : 0.7,
    };
  });
  Plotly.react(
    "ranks",
    traces,
    {
      yaxis: { autorange: "reversed", title: { text: "rank (1 = fastest)" }, dtick: 1 },
      showlegend: false,
      margin: { t: 20, r: 160 },
    },
    { displaylogo: false, responsive: true },
  );
  $("#flips").replaceChildren(
    ...ranking.flips.map((f) =>
      Object.assign(document.createElement("li"), {
        textContent: `${f.faster} is faster than ${f.slower} on ${f.device_a}, slower on ${f.device_b}`,
      }),
    ),
  );
}

async function refresh() {
  const device = $("#device").value;
  if (!device) return;
  const data = await load();
  drawScatter(data, device);
  drawTables(data, device);
  drawRanks(data.ranking);
  if (!report) $("#csv").href = `/dashboard/data.csv?${query()}`;
  document.body.dataset.ready = device; // tests and screenshots wait for this
}

// A report opened as report.html#device=…&export=png|svg puts that chart's image into the page,
// where headless Chromium (latbench report --images) reads it.
async function exportImage(format) {
  const url = await Plotly.toImage("scatter", { format, width: 1000, height: 650 });
  const out = Object.assign(document.createElement("pre"), { id: "export", textContent: url });
  document.body.append(out);
}

function download(format) {
  const name = `latbench-${$("#device").value}`;
  Plotly.downloadImage("scatter", { format, filename: name, width: 1000, height: 650 });
}

document.querySelectorAll("[data-image]").forEach((b) => {
  b.addEventListener("click", () => download(b.dataset.image));
});
$("#controls").addEventListener("change", refresh);
const asked = new URLSearchParams(location.hash.slice(1));
if (report) document.querySelectorAll("#kinds, #families, #precisions").forEach((f) => (f.hidden = true));
if (asked.get("device")) $("#device").value = asked.get("device");
refresh().then(() => asked.get("export") && exportImage(asked.get("export")));
