// Service and instance pages: the definition (with its forms), the instances, the
// endpoints with their $SRV.STATS figures, and charts from the samples this page takes.

import { mgmt, stats } from "./api.js";
import { lineChart } from "./chart.js";
import { ago, badge, count, fill, h, ms, setText, when } from "./dom.js";
import { confirmDialog, definitionDialog, definitionForm } from "./forms.js";
import { navigate } from "./router.js";
import { instancesOf, needsWrite, now, readOnlyNote, store } from "./store.js";

const SAMPLE_MS = 2000;
const WINDOW_MS = 5 * 60 * 1000;

/**
 * Samples `$SRV.STATS` every 2 s while the page is open; each sample gives the
 * throughput (requests/s) and the average latency (ms) since the previous one.
 */
function pageSampler(kind, id, onSample) {
  const series = [];
  let previous = null;
  let timer = 0;
  let stopped = false;

  async function take() {
    const data = await stats(kind, id);
    if (stopped) return;
    if (data) {
      const counters = new Map();
      for (const instance of data.instances) {
        for (const e of instance.endpoints) {
          counters.set(`${instance.id}|${instance.started}|${e.name}`, e);
        }
      }
      if (previous) {
        let requests = 0;
        let time = 0;
        for (const [key, e] of counters) {
          const before = previous.counters.get(key) || { requests: 0, processingTime: 0 };
          requests += Math.max(0, e.requests - before.requests);
          time += Math.max(0, e.processingTime - before.processingTime);
        }
        const seconds = (data.at - previous.at) / 1000;
        if (seconds > 0) {
          series.push({
            t: data.at,
            throughput: requests / seconds,
            latency: requests ? time / requests / 1e6 : null,
          });
        }
        while (series.length && series[0].t < data.at - WINDOW_MS) series.shift();
      }
      previous = { at: data.at, counters };
      onSample(data, series);
    }
    timer = setTimeout(take, SAMPLE_MS);
  }
  take();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function charts() {
  const short = (v) => String(Number(v.toPrecision(3)));
  const throughput = lineChart({ label: "Throughput", format: (v) => `${short(v)}/s`, windowMs: WINDOW_MS });
  const latency = lineChart({ label: "Average latency", format: (v) => `${short(v)} ms`, windowMs: WINDOW_MS });
  const el = h(
    "section",
    { "aria-labelledby": "charts-heading", class: "panel" },
    h("h2", { id: "charts-heading" }, "Throughput and latency"),
    h("p", { class: "hint" }, "The last 5 minutes, sampled every 2 s by this page while it is open."),
    h("div", { class: "charts" }, h("figure", {}, throughput.el, h("figcaption", {}, "Requests per second")), h("figure", {}, latency.el, h("figcaption", {}, "Average latency"))),
  );
  return {
    el,
    draw(series, at) {
      throughput.draw(series.map((s) => ({ t: s.t, v: s.throughput })), at);
      latency.draw(series.map((s) => ({ t: s.t, v: s.latency })), at);
    },
  };
}

function endpointTable(rows, caption) {
  if (!rows.length) return h("p", { class: "empty" }, "No endpoint figures: no instance answered $SRV.STATS.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, ["Endpoint", "Subject", "Requests", "Errors", "Avg latency", "Last error"].map((c) => h("th", { scope: "col" }, c)))),
      h(
        "tbody",
        {},
        rows.map((e) =>
          h(
            "tr",
            { dataset: { endpoint: e.name } },
            h("th", { scope: "row" }, e.name),
            h("td", { class: "mono" }, e.subject),
            h("td", { class: "num requests" }, count(e.requests)),
            h("td", { class: `num errors${e.errors ? " bad" : ""}` }, count(e.errors)),
            h("td", { class: "num" }, ms(e.requests ? e.processingTime / e.requests / 1e6 : null)),
            h("td", {}, e.lastError || "–"),
          ),
        ),
      ),
    ),
  );
}

/** Endpoints of many instances added up by name. */
function addUp(instances) {
  const byName = new Map();
  for (const instance of instances) {
    for (const e of instance.endpoints) {
      const sum = byName.get(e.name) || { name: e.name, subject: e.subject, requests: 0, errors: 0, processingTime: 0, lastError: "" };
      sum.requests += e.requests;
      sum.errors += e.errors;
      sum.processingTime += e.processingTime;
      sum.lastError = e.lastError || sum.lastError;
      byName.set(e.name, sum);
    }
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The instances table, kept in place: rows are added, moved, changed and removed
 * one by one, so a link that has the keyboard focus keeps it while figures change.
 */
function instanceTable() {
  const rows = new Map(); // instanceId -> {tr, cells}
  const tbody = h("tbody");
  const empty = h("p", { class: "empty" }, "No instance of this service is registered.");
  const wrap = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, "Instances"),
      h("thead", {}, h("tr", {}, ["Instance", "Status", "Version", "Heartbeat", "Leadership", "Requests", "Errors"].map((c) => h("th", { scope: "col" }, c)))),
      tbody,
    ),
  );
  const el = h("div", {}, empty, wrap);

  function update(records) {
    const ids = new Set(records.map((r) => r.instanceId));
    for (const [id, row] of rows) {
      if (!ids.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    records.forEach((r, index) => {
      let row = rows.get(r.instanceId);
      if (!row) {
        const cells = {
          status: h("td"),
          version: h("td"),
          age: h("td", { class: "age" }),
          leadership: h("td"),
          requests: h("td", { class: "num" }),
          errors: h("td", { class: "num" }),
        };
        const link = h("a", { href: `/instances/${encodeURIComponent(r.instanceId)}` }, r.instanceId);
        const tr = h("tr", { dataset: { instance: r.instanceId } }, h("th", { scope: "row" }, link), Object.values(cells));
        row = { tr, cells };
        rows.set(r.instanceId, row);
      }
      if (tbody.children[index] !== row.tr) tbody.insertBefore(row.tr, tbody.children[index] || null);
      const c = row.cells;
      if (c.status.textContent !== r.status) fill(c.status, badge(r.status));
      setText(c.version, r.version);
      c.age.dataset.beat = Date.parse(r.lastHeartbeat);
      setText(c.age, ago(Number(c.age.dataset.beat), now()));
      setText(c.leadership, leadership(r));
      const figures = store.stats.instances[r.instanceId];
      setText(c.requests, count(figures ? figures[0] : null));
      setText(c.errors, count(figures ? figures[1] : null));
    });
    empty.hidden = records.length > 0;
    wrap.hidden = records.length === 0;
  }

  return { el, update };
}

/** A <dl> of [label, value] rows, changed in place when only values change. */
function syncList(dl, rows) {
  const items = [...dl.children];
  const sameLabels = items.length === rows.length && rows.every(([label], n) => items[n].firstChild.textContent === label);
  if (!sameLabels) {
    fill(dl, rows.map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value))));
    return;
  }
  rows.forEach(([, value], n) => {
    const dd = items[n].lastChild;
    const text = value instanceof Node ? value.textContent : String(value);
    if (dd.textContent !== text) fill(dd, value);
  });
}

function leadership(record) {
  if (!record.stickyActiveGroup) return "–";
  const revision = record.leadershipRevision ? ` · fencing revision ${record.leadershipRevision}` : "";
  return `group ${record.stickyActiveGroup}${revision}`;
}

function tickAges(root) {
  const t = now();
  for (const el of root.querySelectorAll("[data-beat]")) setText(el, ago(Number(el.dataset.beat), t));
}

function definitionList(rows) {
  return h("dl", { class: "fields" }, rows.map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value))));
}

// -- /services/{name} ------------------------------------------------------------------------

export function serviceView(main, { name }) {
  const defSection = h("section", { class: "panel", "aria-labelledby": "definition-heading" });
  const instancesSection = h("section", { class: "panel", "aria-labelledby": "instances-heading" });
  const endpointsSection = h("section", { class: "panel", "aria-labelledby": "endpoints-heading" });
  const chart = charts();
  let editing = false;
  fill(
    main,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "/" }, "Fleet"), " › ", h("span", { "aria-current": "page" }, name)),
    h("h1", { tabindex: "-1" }, name),
    defSection,
    instancesSection,
    endpointsSection,
    chart.el,
  );

  function drawDefinition() {
    if (editing) return;
    const item = store.definitions.get(name);
    const note = readOnlyNote("services", "definition-read-only");
    const guard = (button) => needsWrite(button, "services", note.id);
    if (!item) {
      fill(
        defSection,
        h("h2", { id: "definition-heading" }, "Definition"),
        h("p", {}, "This service has no definition."),
        note,
        h("div", { class: "buttons" }, guard(h("button", { type: "button", class: "primary", onclick: () => definitionDialog(name) }, "Define this service"))),
      );
      return;
    }
    const d = item.definition;
    fill(
      defSection,
      h("h2", { id: "definition-heading" }, "Definition"),
      definitionList([
        ["Service name", d.serviceName],
        ["Owner", d.owner],
        ["Version", d.version],
        ["Description", d.description || "–"],
        ["Created", when(d.createdAt)],
        ["Updated", when(d.updatedAt)],
        ["Revision", String(item.revision)],
      ]),
      note,
      h(
        "div",
        { class: "buttons" },
        guard(h("button", { type: "button", onclick: edit }, "Edit definition")),
        guard(h("button", { type: "button", class: "danger", onclick: () => remove(item) }, "Delete definition…")),
      ),
    );
  }

  function edit() {
    const item = store.definitions.get(name);
    if (!item) return;
    editing = true;
    const form = definitionForm({
      definition: item.definition,
      revision: item.revision,
      onDone: () => {
        editing = false;
        drawDefinition();
        defSection.querySelector("button")?.focus();
      },
      onCancel: () => {
        editing = false;
        drawDefinition();
      },
    });
    fill(defSection, h("h2", { id: "definition-heading" }, "Edit definition"), form);
    form.querySelector("[name=owner]").focus();
  }

  function remove(item) {
    confirmDialog({
      title: `Delete the definition of ${name}?`,
      body: h("p", {}, "Its running instances keep running; only the definition is deleted. This cannot be undone."),
      confirm: "Delete definition",
      action: async () => {
        const reply = await mgmt("services", "delete", { serviceName: name, revision: item.revision });
        if (reply.ok) {
          navigate("/");
          return null;
        }
        if (reply.error.code === "REVISION_CONFLICT") {
          const latest = store.definitions.get(name);
          return `Someone else changed this definition since you opened it (now at revision ${latest ? latest.revision : "?"}). Nothing was deleted: close this dialog, review the new values, and delete again if you still want to.`;
        }
        return `${reply.status} ${reply.error.code}: ${reply.error.message}`;
      },
    });
  }

  const instancesHeading = h("h2", { id: "instances-heading" });
  const instances = instanceTable();
  fill(instancesSection, instancesHeading, instances.el);
  function drawInstances() {
    const records = instancesOf(name);
    setText(instancesHeading, `Instances (${records.length})`);
    instances.update(records);
  }

  let lastStats = null;
  function drawEndpoints() {
    fill(
      endpointsSection,
      h("h2", { id: "endpoints-heading" }, "Endpoints"),
      h("p", { class: "hint" }, "From $SRV.STATS, added up over the service's instances."),
      lastStats ? endpointTable(addUp(lastStats.instances), "Endpoints") : h("p", {}, "Sampling…"),
    );
  }

  drawDefinition();
  drawInstances();
  drawEndpoints();
  chart.draw([], Date.now());
  const stopSampling = pageSampler("services", name, (data, series) => {
    lastStats = data;
    drawEndpoints();
    chart.draw(series, data.at);
  });
  const ticker = setInterval(() => tickAges(instancesSection), 1000);

  return {
    title: name,
    update(change) {
      if (change.type === "snapshot" || (change.type === "definition" && change.name === name)) drawDefinition();
      if (change.type === "snapshot" || change.type === "stats" || ((change.type === "instance" || change.type === "gone") && change.id.startsWith(`${name}-`))) drawInstances();
    },
    unmount() {
      stopSampling();
      clearInterval(ticker);
    },
  };
}

// -- /instances/{id} ------------------------------------------------------------------------

export function instanceView(main, { id }) {
  const service = id.replace(/-[0-9a-f]{8}$/, "");
  const fieldsSection = h("section", { class: "panel", "aria-labelledby": "record-heading" });
  const endpointsSection = h("section", { class: "panel", "aria-labelledby": "endpoints-heading" });
  const chart = charts();
  fill(
    main,
    h(
      "nav",
      { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "/" }, "Fleet"),
      " › ",
      h("a", { href: `/services/${encodeURIComponent(service)}` }, service),
      " › ",
      h("span", { "aria-current": "page" }, id),
    ),
    h("h1", { tabindex: "-1" }, id),
    fieldsSection,
    endpointsSection,
    chart.el,
  );

  const recordList = h("dl", { class: "fields" });
  const recordNote = h("p", { class: "gone" });
  fill(fieldsSection, h("h2", { id: "record-heading" }, "Registry record"), recordNote, recordList);
  function drawRecord() {
    const r = store.instances.get(id);
    recordNote.hidden = Boolean(r);
    recordList.hidden = !r;
    if (!r) {
      setText(recordNote, store.loaded ? "This instance is not in the registry: it stopped, or its key expired." : "Loading…");
      return;
    }
    const figures = store.stats.instances[id];
    const metadata = Object.entries(r.metadata || {}).map(([key, value]) => [`metadata.${key}`, typeof value === "string" ? value : JSON.stringify(value)]);
    syncList(recordList, [
        ["Status", badge(r.status)],
        ["Service", h("a", { href: `/services/${encodeURIComponent(r.serviceName)}` }, r.serviceName)],
        ["Version", r.version],
        ["Heartbeat", ago(Date.parse(r.lastHeartbeat), now())],
        ["Leadership", leadership(r)],
        ["Configuration", r.configuration ? `${r.configuration.application} / ${r.configuration.name}` : "–"],
        ["Requests", count(figures ? figures[0] : null)],
        ["Errors", count(figures ? figures[1] : null)],
        ["Registry revision", String(r.revision)],
        ...metadata,
    ]);
  }

  let lastStats = null;
  function drawEndpoints() {
    const instance = lastStats && lastStats.instances[0];
    fill(
      endpointsSection,
      h("h2", { id: "endpoints-heading" }, "Endpoints"),
      instance && instance.description ? h("p", {}, instance.description) : null,
      h("p", { class: "hint" }, instance ? `From $SRV.STATS; serving since ${when(instance.started)}.` : "From $SRV.STATS."),
      lastStats ? endpointTable(instance ? instance.endpoints : [], "Endpoints") : h("p", {}, "Sampling…"),
    );
  }

  drawRecord();
  drawEndpoints();
  chart.draw([], Date.now());
  const stopSampling = pageSampler("instances", id, (data, series) => {
    lastStats = data;
    drawEndpoints();
    chart.draw(series, data.at);
  });
  const ticker = setInterval(drawRecord, 1000); // the heartbeat age ticks
  return {
    title: id,
    update(change) {
      if (change.type === "snapshot" || change.type === "stats" || ((change.type === "instance" || change.type === "gone") && change.id === id)) drawRecord();
    },
    unmount() {
      stopSampling();
      clearInterval(ticker);
    },
  };
}

