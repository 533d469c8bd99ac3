// The fleet view: one card per instance, grouped by service, changed in place as the
// registry changes (a card is added, updated or removed; the rest are left alone).

import { ago, badge, count, fill, h, plural, setText } from "./dom.js";
import { definitionDialog } from "./forms.js";
import { needsWrite, now, readOnlyNote, store } from "./store.js";

export function fleetView(main) {
  const groups = new Map(); // serviceName -> {section, list, heading parts}
  const cards = new Map(); // instanceId -> {el, parts}
  const summary = h("p", { class: "summary", id: "fleet-summary" });
  const readOnly = readOnlyNote("services", "definitions-read-only");
  const newButton = needsWrite(
    h("button", { type: "button", class: "primary", onclick: () => definitionDialog() }, "New service definition"),
    "services",
    readOnly.id,
  );
  const empty = h("p", { class: "empty", hidden: true }, "No instance is registered and no service is defined yet.");
  const servicesEl = h("div", { class: "services" });
  fill(
    main,
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Fleet"), h("div", { class: "actions" }, newButton)),
    summary,
    readOnly,
    empty,
    servicesEl,
  );

  function group(name) {
    let entry = groups.get(name);
    if (entry) return entry;
    const title = h("a", { href: `/services/${encodeURIComponent(name)}` }, name);
    const definition = h("span", { class: "definition" });
    const size = h("span", { class: "size" });
    const list = h("ul", { class: "cards", "aria-label": `Instances of ${name}` });
    const none = h("li", { class: "no-instances" }, "No instance running.");
    const headingId = `service-${name}`;
    const section = h(
      "section",
      { class: "service", "aria-labelledby": headingId, dataset: { service: name } },
      h("h2", { id: headingId }, title, " ", definition, " ", size),
      list,
    );
    entry = { section, list, definition, size, none, name };
    groups.set(name, entry);
    insertSorted(servicesEl, section, name, (el) => el.dataset.service);
    return entry;
  }

  function updateGroup(entry) {
    const item = store.definitions.get(entry.name);
    if (item) {
      const d = item.definition;
      setText(entry.definition, `${d.owner} · v${d.version}`);
      entry.definition.classList.remove("undefined");
    } else {
      setText(entry.definition, "not defined");
      entry.definition.classList.add("undefined");
    }
    const n = entry.list.querySelectorAll(":scope > li.card-item").length;
    setText(entry.size, plural(n, "instance"));
    if (n === 0 && !entry.none.isConnected) entry.list.appendChild(entry.none);
    if (n > 0 && entry.none.isConnected) entry.none.remove();
  }

  function card(record) {
    const parts = {
      status: h("span"),
      version: h("dd"),
      age: h("dd", { class: "age" }),
      leadership: h("dd"),
      requests: h("dd", { class: "num" }),
      errors: h("dd", { class: "num" }),
    };
    parts.leadershipRow = h("div", { class: "wide" }, h("dt", {}, "Leadership"), parts.leadership);
    const el = h(
      "li",
      { class: "card-item", dataset: { instance: record.instanceId } },
      h(
        "article",
        { class: "card", "aria-label": `Instance ${record.instanceId}` },
        h(
          "header",
          {},
          h("h3", {}, h("a", { href: `/instances/${encodeURIComponent(record.instanceId)}` }, record.instanceId)),
          parts.status,
        ),
        h(
          "dl",
          {},
          h("div", {}, h("dt", {}, "Version"), parts.version),
          h("div", {}, h("dt", {}, "Heartbeat"), parts.age),
          h("div", {}, h("dt", {}, "Requests"), parts.requests),
          h("div", {}, h("dt", {}, "Errors"), parts.errors),
          parts.leadershipRow,
        ),
      ),
    );
    return { el, parts, status: null };
  }

  function updateCard(entry, record) {
    const p = entry.parts;
    if (entry.status !== record.status) {
      p.status.replaceWith((p.status = badge(record.status)));
      entry.status = record.status;
      entry.el.firstChild.classList.toggle("unhealthy", record.status === "UNHEALTHY");
    }
    setText(p.version, record.version);
    entry.beat = Date.parse(record.lastHeartbeat);
    setText(p.age, ago(entry.beat, now()));
    if (record.stickyActiveGroup) {
      p.leadershipRow.hidden = false;
      const revision = record.leadershipRevision ? ` · fencing revision ${record.leadershipRevision}` : "";
      setText(p.leadership, `group ${record.stickyActiveGroup}${revision}`);
    } else {
      p.leadershipRow.hidden = true;
    }
    updateStats(entry, record.instanceId);
  }

  function updateStats(entry, id) {
    const figures = store.stats.instances[id];
    setText(entry.parts.requests, count(figures ? figures[0] : null));
    setText(entry.parts.errors, count(figures ? figures[1] : null));
    entry.parts.errors.classList.toggle("bad", Boolean(figures && figures[1]));
  }

  function put(record) {
    let entry = cards.get(record.instanceId);
    const target = group(record.serviceName);
    if (!entry) {
      entry = card(record);
      cards.set(record.instanceId, entry);
      insertSorted(target.list, entry.el, record.instanceId, (el) => el.dataset.instance);
    }
    updateCard(entry, record);
    return target;
  }

  function remove(id) {
    const entry = cards.get(id);
    if (!entry) return null;
    const name = entry.el.closest("section").dataset.service;
    cards.delete(id);
    entry.el.remove();
    return groups.get(name);
  }

  function updateHeader() {
    const services = new Set([...store.instances.values()].map((r) => r.serviceName));
    for (const name of store.definitions.keys()) services.add(name);
    setText(
      summary,
      `${plural(store.instances.size, "instance")} of ${plural(services.size, "service")}` +
        (store.namespace ? ` · namespace ${store.namespace}` : ""),
    );
    empty.hidden = services.size > 0 || !store.loaded;
  }

  function renderAll() {
    servicesEl.replaceChildren();
    groups.clear();
    cards.clear();
    const records = [...store.instances.values()].sort((a, b) => a.instanceId.localeCompare(b.instanceId));
    const names = new Set(records.map((r) => r.serviceName));
    for (const name of store.definitions.keys()) names.add(name);
    const fragment = document.createDocumentFragment();
    for (const name of [...names].sort()) {
      const entry = group(name);
      fragment.appendChild(entry.section);
    }
    for (const record of records) {
      const entry = card(record);
      cards.set(record.instanceId, entry);
      groups.get(record.serviceName).list.appendChild(entry.el);
      updateCard(entry, record);
    }
    for (const entry of groups.values()) updateGroup(entry);
    servicesEl.appendChild(fragment);
    updateHeader();
  }

  // Changes are applied once per frame, however many arrive in between.
  let pending = new Map();
  let frame = 0;
  function schedule(key, change) {
    pending.set(key, change);
    if (!frame) frame = requestAnimationFrame(flush);
  }
  function flush() {
    frame = 0;
    const changes = pending;
    pending = new Map();
    if (changes.has("snapshot")) return renderAll();
    const touched = new Set();
    for (const change of changes.values()) {
      if (change.type === "instance") {
        const record = store.instances.get(change.id);
        if (record) touched.add(put(record));
      } else if (change.type === "gone") {
        touched.add(remove(change.id));
      } else if (change.type === "definition") {
        touched.add(group(change.name));
      } else if (change.type === "stats") {
        for (const [id, entry] of cards) updateStats(entry, id);
      }
    }
    for (const entry of touched) {
      if (!entry) continue;
      const stillThere = store.definitions.has(entry.name) || [...store.instances.values()].some((r) => r.serviceName === entry.name);
      if (!stillThere) {
        entry.section.remove();
        groups.delete(entry.name);
      } else {
        updateGroup(entry);
      }
    }
    updateHeader();
  }

  function tick() {
    const t = now();
    for (const entry of cards.values()) setText(entry.parts.age, ago(entry.beat, t));
  }
  const ticker = setInterval(tick, 1000);
  renderAll();

  return {
    title: "Fleet",
    update(change) {
      if (change.type === "snapshot") schedule("snapshot", change);
      else if (change.type === "instance" || change.type === "gone") schedule(`i:${change.id}`, change);
      else if (change.type === "definition") schedule(`d:${change.name}`, change);
      else if (change.type === "stats") schedule("stats", change);
    },
    unmount() {
      clearInterval(ticker);
      if (frame) cancelAnimationFrame(frame);
    },
  };
}

/** Insert `el` among `parent`'s children kept sorted by `keyOf`. */
export function insertSorted(parent, el, key, keyOf) {
  for (const child of parent.children) {
    const other = keyOf(child);
    if (other !== undefined && other.localeCompare(key) > 0) {
      parent.insertBefore(el, child);
      return;
    }
  }
  parent.appendChild(el);
}
