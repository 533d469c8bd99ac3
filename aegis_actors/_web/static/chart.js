// A small line chart in SVG, drawn from the samples the page takes (no library).

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 150;
const PAD = { left: 64, right: 8, top: 10, bottom: 22 };

function svg(tag, attrs = {}, text = null) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== null) el.textContent = text;
  return el;
}

/**
 * A chart of one series over a time window: `draw(points)` with points [{t, v}]
 * (t in ms, v a number or null for "no value"). `format(v)` labels the axis.
 */
export function lineChart({ label, format, windowMs }) {
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "chart",
    role: "img",
    preserveAspectRatio: "none",
  });
  const title = svg("title", {}, label);
  root.appendChild(title);
  const grid = svg("g", { class: "grid" });
  const line = svg("polyline", { class: "series", fill: "none" });
  const labels = svg("g", { class: "labels" });
  root.append(grid, line, labels);

  function draw(points, nowMs) {
    const values = points.filter((p) => p.v !== null && Number.isFinite(p.v));
    const max = values.length ? Math.max(...values.map((p) => p.v)) : 0;
    const top = max > 0 ? niceCeiling(max) : 1;
    const x = (t) => PAD.left + ((t - (nowMs - windowMs)) / windowMs) * (WIDTH - PAD.left - PAD.right);
    const y = (v) => HEIGHT - PAD.bottom - (v / top) * (HEIGHT - PAD.top - PAD.bottom);
    grid.replaceChildren();
    labels.replaceChildren();
    for (const fraction of [0, 0.5, 1]) {
      const v = top * fraction;
      grid.appendChild(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }));
      labels.appendChild(svg("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, format(v)));
    }
    const minutes = Math.round(windowMs / 60000);
    labels.appendChild(svg("text", { x: PAD.left, y: HEIGHT - 4 }, `−${minutes} min`));
    labels.appendChild(svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 4, "text-anchor": "end" }, "now"));
    line.setAttribute("points", values.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" "));
    const latest = values.length ? values[values.length - 1].v : null;
    const summary = values.length
      ? `${label}: now ${format(latest)}, peak ${format(max)} over the last ${minutes} minutes`
      : `${label}: no samples yet`;
    title.textContent = summary;
    root.setAttribute("aria-label", summary);
    return summary;
  }

  return { el: root, draw };
}

function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}
