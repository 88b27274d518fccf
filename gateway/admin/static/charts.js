// SVG drawings: time series charts and workflow graphs.
"use strict";

const Charts = (() => {
  const {h, svg} = OJS;

  // series: [{label, color, values: [number]}], times: [iso] (same length as values).
  function lineChart(title, times, series) {
    const width = 600, height = 180, left = 40, bottom = 20, top = 8, right = 8;
    const max = Math.max(1, ...series.flatMap((s) => s.values));
    const n = Math.max(times.length, 2);
    const x = (i) => left + (i * (width - left - right)) / (n - 1);
    const y = (v) => top + (1 - v / max) * (height - top - bottom);
    const grid = [0, 0.5, 1].map((f) => {
      const v = Math.round(max * f);
      return [
        svg("line", {x1: left, x2: width - right, y1: y(v), y2: y(v), stroke: "#e5e7eb"}),
        svg("text", {x: left - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 10, fill: "#6b7280"}, v),
      ];
    });
    const labels = [0, Math.floor((times.length - 1) / 2), times.length - 1]
      .filter((i, k, all) => i >= 0 && all.indexOf(i) === k)
      .map((i) => svg("text", {x: x(i), y: height - 4, "text-anchor": i === 0 ? "start" : i === times.length - 1 ? "end" : "middle", "font-size": 10, fill: "#6b7280"},
        new Date(times[i]).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})));
    const lines = series.map((s) => svg("polyline", {
      fill: "none", stroke: s.color, "stroke-width": 2, "stroke-linejoin": "round",
      points: s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
    }));
    const summary = series.map((s) => `${s.label}: ${s.values.reduce((a, b) => a + b, 0)} in the last ${times.length} minutes`).join("; ");
    return h("figure", {class: "panel chart", style: "margin:0"},
      h("figcaption", {}, h("strong", {}, title), " ",
        h("span", {class: "legend"}, series.map((s) => h("span", {}, h("i", {style: `background:${s.color}`}), s.label)))),
      svg("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}. ${summary}`, preserveAspectRatio: "none"}, grid, labels, lines));
  }

  const STEP_COLORS = {
    waiting: ["#eef0f3", "#6b7280"], pending: ["#eef0f3", "#6b7280"], active: ["#dfe8ff", "#2957c7"],
    completed: ["#dcf3e3", "#1f7a3a"], failed: ["#fde2e0", "#b3261e"], cancelled: ["#ececec", "#555555"],
  };

  // Steps laid out in columns by depth (longest chain of dependencies), edges from
  // each dependency to its dependent; a step links to its job when it has one.
  function workflowGraph(workflow) {
    const steps = workflow.steps || [];
    const byId = new Map(steps.map((s) => [s.id, s]));
    const depth = new Map();
    const depthOf = (step, seen) => {
      if (depth.has(step.id)) return depth.get(step.id);
      if (seen.has(step.id)) return 0;
      seen.add(step.id);
      const deps = (step.depends_on || []).map((d) => byId.get(d)).filter(Boolean);
      const d = deps.length ? 1 + Math.max(...deps.map((p) => depthOf(p, seen))) : 0;
      depth.set(step.id, d);
      return d;
    };
    steps.forEach((s) => depthOf(s, new Set()));
    const columns = [];
    for (const s of steps) (columns[depth.get(s.id)] = columns[depth.get(s.id)] || []).push(s);
    const boxW = 170, boxH = 46, gapX = 60, gapY = 16, pad = 12;
    const pos = new Map();
    columns.forEach((col, c) => col.forEach((s, r) => pos.set(s.id, {x: pad + c * (boxW + gapX), y: pad + r * (boxH + gapY)})));
    const width = pad * 2 + columns.length * (boxW + gapX) - gapX;
    const height = pad * 2 + Math.max(1, ...columns.map((c) => c.length)) * (boxH + gapY) - gapY;
    const edges = [];
    for (const s of steps) {
      for (const d of s.depends_on || []) {
        const a = pos.get(d), b = pos.get(s.id);
        if (!a || !b) continue;
        const x1 = a.x + boxW, y1 = a.y + boxH / 2, x2 = b.x, y2 = b.y + boxH / 2, mx = (x1 + x2) / 2;
        edges.push(svg("path", {d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, fill: "none", stroke: "#9aa3b2", "stroke-width": 1.5, "marker-end": "url(#arrow)"}));
      }
    }
    const nodes = steps.map((s) => {
      const p = pos.get(s.id);
      const [fill, stroke] = STEP_COLORS[s.state] || STEP_COLORS.waiting;
      const label = `${s.id}: ${s.type}, ${s.state}`;
      const box = svg("g", {transform: `translate(${p.x},${p.y})`, "data-step": s.id, "data-state": s.state},
        svg("title", {}, label),
        svg("rect", {width: boxW, height: boxH, rx: 6, fill, stroke, "stroke-width": 1.5}),
        svg("text", {x: 10, y: 19, fill: "#1d1f23", "font-weight": 600}, clip(s.id, 22)),
        svg("text", {x: 10, y: 36, fill: stroke}, `${clip(s.type, 16)} · ${s.state}`));
      return s.job_id ? svg("a", {href: `#/jobs/${encodeURIComponent(s.job_id)}`, "aria-label": label}, box) : box;
    });
    const defs = svg("defs", {}, svg("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"},
      svg("path", {d: "M0,0 L10,5 L0,10 z", fill: "#9aa3b2"})));
    return h("div", {class: "panel graph"},
      svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": `Workflow graph with ${steps.length} steps`}, defs, edges, nodes));
  }

  function clip(text, n) {
    text = String(text || "");
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  // A horizontal bar of the jobs of a queue per state.
  function stateBar(counts) {
    const parts = [["active", "#2957c7"], ["available", "#9aa3b2"], ["scheduled", "#e0a030"], ["retryable", "#f0c060"], ["pending", "#cfd4dc"]];
    const total = parts.reduce((a, [k]) => a + (counts[k] || 0), 0);
    if (!total) return h("div", {class: "bar", title: "empty"});
    return h("div", {class: "bar", role: "img", "aria-label": parts.map(([k]) => `${k} ${counts[k] || 0}`).join(", ")},
      parts.filter(([k]) => counts[k]).map(([k, color]) => h("span", {style: `width:${(100 * counts[k]) / total}%;background:${color}`, title: `${k}: ${counts[k]}`})));
  }

  return {lineChart, workflowGraph, stateBar};
})();
