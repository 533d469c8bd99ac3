// Building the page: every text goes in through textContent or an attribute, never as
// HTML, so what the fleet sends (names, descriptions, errors) cannot become markup.

/** An element: h("a", {href: "/x", class: "y"}, "text", child, [more children]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace everything inside `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Set a text only when it changed (cheap for 1,000 cards updated each second). */
export function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

const number = new Intl.NumberFormat("en");

export function count(value) {
  return value === null || value === undefined ? "–" : number.format(value);
}

export function ms(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (value < 1) return `${value.toFixed(3)} ms`;
  if (value < 100) return `${value.toFixed(1)} ms`;
  return `${number.format(Math.round(value))} ms`;
}

/** "4s ago", "3m 2s ago", "2h 5m ago": how long ago `at` (ms since epoch) was. */
export function ago(at, now) {
  const seconds = Math.max(0, Math.floor((now - at) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${seconds % 60}s ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h ${minutes % 60}m ago`;
  return `${Math.floor(hours / 24)}d ago`;
}

export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function plural(n, word) {
  return `${number.format(n)} ${word}${n === 1 ? "" : "s"}`;
}

/** A status badge: the word itself, coloured by a class (the colour is never the only cue). */
export function badge(status) {
  const known = ["ACTIVE", "UNHEALTHY", "STANDBY"].includes(status);
  return h("span", { class: `badge badge-${known ? status.toLowerCase() : "unknown"}` }, status);
}
