// Applications and their configurations: lists, forms, a JSON editor that refuses
// invalid JSON before sending, the revision history, and the instances bound to each.

import { listAll, mgmt } from "./api.js";
import { badge, fill, h, plural, when } from "./dom.js";
import { confirmDialog, conflictPanel, field, fieldError, showReply } from "./forms.js";
import { navigate } from "./router.js";
import { needsWrite, readOnlyNote, store } from "./store.js";

function problem(section, reply) {
  fill(section, h("div", { class: "alert", role: "alert" }, `${reply.status} ${reply.error.code}: ${reply.error.message}`));
}

function crumbs(...parts) {
  const items = [h("a", { href: "/configurations" }, "Configurations")];
  for (const [label, href] of parts) items.push(" › ", href ? h("a", { href }, label) : h("span", { "aria-current": "page" }, label));
  return h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, items);
}

/** Instances of the fleet whose registry record says they follow `app`/`name`. */
function boundInstances(appName, configName) {
  return [...store.instances.values()]
    .filter((r) => r.configuration && r.configuration.application === appName && r.configuration.name === configName)
    .sort((a, b) => a.instanceId.localeCompare(b.instanceId));
}

/**
 * A JSON editor: a labelled textarea checked as you type; `value()` is the parsed
 * object, or null (with the reason shown beside it) when it is not a JSON object.
 */
export function jsonEditor({ label, value }) {
  const f = field({
    name: "config",
    label,
    multiline: true,
    value: JSON.stringify(value, null, 2),
    hint: "A JSON object, at most 64 KiB.",
    spellcheck: "false",
    rows: 12,
    class: "json",
  });
  function check() {
    const text = f.input.value;
    try {
      const parsed = JSON.parse(text);
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        fieldError(f, "Must be a JSON object ({ ... }), not " + (Array.isArray(parsed) ? "an array" : typeof parsed === "object" ? "null" : `a ${typeof parsed}`) + ".");
        return null;
      }
      fieldError(f, null);
      return parsed;
    } catch (error) {
      fieldError(f, `Not valid JSON: ${error.message}`);
      return null;
    }
  }
  f.input.addEventListener("input", check);
  const format = h(
    "button",
    {
      type: "button",
      onclick: () => {
        const parsed = check();
        if (parsed) f.input.value = JSON.stringify(parsed, null, 2);
      },
    },
    "Format JSON",
  );
  f.wrapper.appendChild(h("div", { class: "buttons inline" }, format));
  return { ...f, check };
}

// -- /configurations ------------------------------------------------------------------------

export function applicationsView(main) {
  const list = h("section", { class: "panel", "aria-labelledby": "apps-heading" });
  const create = h("section", { class: "panel", "aria-labelledby": "new-app-heading" });
  fill(main, h("h1", { tabindex: "-1" }, "Configurations"), list, create);
  let alive = true;

  async function load() {
    const reply = await listAll("apps");
    if (!alive) return;
    if (!reply.ok) return problem(list, reply);
    const apps = reply.data.items;
    fill(
      list,
      h("h2", { id: "apps-heading" }, "Applications"),
      apps.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              {},
              h("caption", { class: "visually-hidden" }, "Applications"),
              h("thead", {}, h("tr", {}, ["Application", "Configurations", "Comments", "Updated"].map((c) => h("th", { scope: "col" }, c)))),
              h(
                "tbody",
                {},
                apps.map((a) =>
                  h(
                    "tr",
                    {},
                    h("th", { scope: "row" }, h("a", { href: `/configurations/${encodeURIComponent(a.id)}` }, a.name)),
                    h("td", { class: "num" }, String(a.configurationIds.length)),
                    h("td", {}, a.comments || "–"),
                    h("td", {}, when(a.updatedAt)),
                  ),
                ),
              ),
            ),
          )
        : h("p", { class: "empty" }, "No application yet."),
    );
  }

  const name = field({ name: "name", label: "Name", hint: "Lowercase letters, digits and '-', 3-64 characters.", required: true, autocomplete: "off" });
  const comments = field({ name: "comments", label: "Comments", multiline: true, rows: 2 });
  const alertEl = h("div", { class: "alert", role: "alert", hidden: true });
  const note = readOnlyNote("apps", "apps-read-only");
  const save = needsWrite(h("button", { type: "submit", class: "primary" }, "Create application"), "apps", note.id);
  const form = h("form", { novalidate: true, "aria-labelledby": "new-app-heading" }, name.wrapper, comments.wrapper, alertEl, note, h("div", { class: "buttons" }, save));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    const reply = await mgmt("apps", "create", { name: name.input.value, comments: comments.input.value });
    needsWrite(save, "apps");
    if (reply.ok) navigate(`/configurations/${encodeURIComponent(reply.data.id)}`);
    else showReply(reply, [name, comments], alertEl);
  });
  fill(create, h("h2", { id: "new-app-heading" }, "New application"), form);
  load();
  return {
    title: "Configurations",
    unmount() {
      alive = false;
    },
  };
}

// -- /configurations/{appId} -------------------------------------------------------------------

export function applicationView(main, { app }) {
  const head = h("div");
  const list = h("section", { class: "panel", "aria-labelledby": "configs-heading" });
  const create = h("section", { class: "panel", "aria-labelledby": "new-config-heading" });
  fill(main, head, list, create);
  let alive = true;
  let application = null;

  async function load() {
    const got = await mgmt("apps", "get", { id: app });
    if (!alive) return;
    if (!got.ok) {
      fill(head, crumbs(["Not found", null]), h("h1", { tabindex: "-1" }, "Application not found"));
      return problem(list, got);
    }
    application = got.data;
    const note = readOnlyNote("apps", "app-read-only");
    fill(
      head,
      crumbs([application.name, null]),
      h("h1", { tabindex: "-1" }, application.name),
      h(
        "dl",
        { class: "fields" },
        h("div", {}, h("dt", {}, "Comments"), h("dd", {}, application.comments || "–")),
        h("div", {}, h("dt", {}, "Updated"), h("dd", {}, when(application.updatedAt))),
        h("div", {}, h("dt", {}, "Revision"), h("dd", {}, String(got.revision))),
      ),
      note,
      h(
        "div",
        { class: "buttons" },
        needsWrite(h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: () =>
              confirmDialog({
                title: `Delete the application ${application.name}?`,
                body: h("p", {}, `Its ${plural(application.configurationIds.length, "configuration")} are deleted with it. Bound services keep their last value.`),
                confirm: "Delete application",
                action: async () => {
                  const reply = await mgmt("apps", "delete", { id: app, revision: got.revision });
                  if (reply.ok) return navigate("/configurations");
                  return `${reply.status} ${reply.error.code}: ${reply.error.message}`;
                },
              }),
          },
          "Delete application…",
        ), "apps", note.id),
      ),
    );
    const configs = await listAll("configs", { applicationId: app });
    if (!alive) return;
    if (!configs.ok) return problem(list, configs);
    drawList(configs.data.items);
    drawCreate();
  }

  function drawList(items) {
    fill(
      list,
      h("h2", { id: "configs-heading" }, "Configurations"),
      items.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              {},
              h("caption", { class: "visually-hidden" }, "Configurations"),
              h("thead", {}, h("tr", {}, ["Configuration", "Bound by", "Comments", "Updated"].map((c) => h("th", { scope: "col" }, c)))),
              h(
                "tbody",
                {},
                items.map((c) =>
                  h(
                    "tr",
                    {},
                    h("th", { scope: "row" }, h("a", { href: `/configurations/${encodeURIComponent(app)}/${encodeURIComponent(c.id)}` }, c.name)),
                    h("td", {}, plural(boundInstances(application.name, c.name).length, "instance")),
                    h("td", {}, c.comments || "–"),
                    h("td", {}, when(c.updatedAt)),
                  ),
                ),
              ),
            ),
          )
        : h("p", { class: "empty" }, "No configuration in this application yet."),
    );
  }

  function drawCreate() {
    const name = field({ name: "name", label: "Name", hint: "Letters, digits, '_' and '-', up to 64 characters.", required: true, autocomplete: "off" });
    const comments = field({ name: "comments", label: "Comments", multiline: true, rows: 2 });
    const editor = jsonEditor({ label: "Value (JSON)", value: {} });
    const alertEl = h("div", { class: "alert", role: "alert", hidden: true });
    const note = readOnlyNote("configs", "new-config-read-only");
    const save = needsWrite(h("button", { type: "submit", class: "primary" }, "Create configuration"), "configs", note.id);
    const form = h("form", { novalidate: true, "aria-labelledby": "new-config-heading" }, name.wrapper, comments.wrapper, editor.wrapper, alertEl, note, h("div", { class: "buttons" }, save));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const config = editor.check();
      if (!config) return editor.input.focus(); // refused here: never sent
      save.disabled = true;
      const reply = await mgmt("configs", "create", { applicationId: app, name: name.input.value, comments: comments.input.value, config });
      needsWrite(save, "configs");
      if (reply.ok) navigate(`/configurations/${encodeURIComponent(app)}/${encodeURIComponent(reply.data.id)}`);
      else showReply(reply, [name, comments, editor], alertEl);
    });
    fill(create, h("h2", { id: "new-config-heading" }, "New configuration"), form);
  }

  load();
  return {
    title: "Application",
    unmount() {
      alive = false;
    },
  };
}

// -- /configurations/{appId}/{configId} ----------------------------------------------------------

export function configurationView(main, { app, config }) {
  const head = h("div");
  const editSection = h("section", { class: "panel", "aria-labelledby": "value-heading" });
  const boundSection = h("section", { class: "panel", "aria-labelledby": "bound-heading" });
  const historySection = h("section", { class: "panel", "aria-labelledby": "history-heading" });
  fill(main, head, editSection, boundSection, historySection);
  let alive = true;
  let application = null;
  let configuration = null;

  async function load() {
    const [gotApp, gotConfig] = await Promise.all([mgmt("apps", "get", { id: app }), mgmt("configs", "get", { id: config })]);
    if (!alive) return;
    if (!gotApp.ok || !gotConfig.ok) {
      fill(head, crumbs(["Not found", null]), h("h1", { tabindex: "-1" }, "Configuration not found"));
      return problem(editSection, gotApp.ok ? gotConfig : gotApp);
    }
    application = gotApp.data;
    configuration = gotConfig.data;
    fill(
      head,
      crumbs([application.name, `/configurations/${encodeURIComponent(app)}`], [configuration.name, null]),
      h("h1", { tabindex: "-1" }, `${application.name} / ${configuration.name}`),
    );
    drawEditor(gotConfig.revision);
    drawBound();
    loadHistory();
  }

  function drawEditor(revision, saved = false) {
    let base = revision;
    const comments = field({ name: "comments", label: "Comments", multiline: true, rows: 2, value: configuration.comments });
    const editor = jsonEditor({ label: "Value (JSON)", value: configuration.config });
    const alertEl = h("div", { class: "alert", role: "alert", hidden: true });
    const conflict = h("div", { class: "conflict-slot" });
    const note = readOnlyNote("configs", "config-read-only");
    const save = needsWrite(h("button", { type: "submit", class: "primary" }, "Save configuration"), "configs", note.id);
    const remove = needsWrite(h("button", { type: "button", class: "danger", onclick: () => confirmDelete() }, "Delete configuration…"), "configs", note.id);
    const form = h(
      "form",
      { novalidate: true, "aria-labelledby": "value-heading" },
      h("p", { class: saved ? "saved" : "hint", role: "status" }, `${saved ? "Saved: r" : "R"}evision ${revision}, updated ${when(configuration.updatedAt)}.`),
      comments.wrapper,
      editor.wrapper,
      alertEl,
      conflict,
      note,
      h("div", { class: "buttons" }, remove, save),
    );

    async function submit() {
      const value = editor.check();
      if (!value) return editor.input.focus(); // refused here: never sent
      save.disabled = true;
      conflict.replaceChildren();
      const reply = await mgmt("configs", "update", { id: config, revision: base, comments: comments.input.value, config: value });
      needsWrite(save, "configs");
      if (reply.ok) {
        configuration = reply.data;
        drawEditor(reply.revision, true);
        loadHistory();
        editSection.querySelector("textarea.json")?.focus();
        return;
      }
      if (reply.error.code !== "REVISION_CONFLICT") return showReply(reply, [comments, editor], alertEl);
      const current = await mgmt("configs", "get", { id: config });
      if (!current.ok) return showReply(current, [comments, editor], alertEl);
      fill(
        conflict,
        conflictPanel({
          what: "configuration",
          mine: base,
          theirs: { revision: current.revision },
          rows: [
            ["Comments", current.data.comments || "–"],
            ["Value", h("pre", { class: "json" }, JSON.stringify(current.data.config, null, 2))],
            ["Updated", when(current.data.updatedAt)],
          ],
          onTheirs: () => {
            configuration = current.data;
            drawEditor(current.revision);
          },
          onMine: () => {
            base = current.revision;
            submit();
          },
        }),
      );
      conflict.querySelector("button").focus();
    }

    function confirmDelete() {
      confirmDialog({
        title: `Delete the configuration ${configuration.name}?`,
        body: h("p", {}, "Bound services keep their last value. This cannot be undone."),
        confirm: "Delete configuration",
        action: async () => {
          const reply = await mgmt("configs", "delete", { id: config, revision: base });
          if (reply.ok) return navigate(`/configurations/${encodeURIComponent(app)}`);
          return `${reply.status} ${reply.error.code}: ${reply.error.message}`;
        },
      });
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    fill(editSection, h("h2", { id: "value-heading" }, "Value"), form);
  }

  let boundShown = null;
  function drawBound() {
    if (!application) return;
    const bound = boundInstances(application.name, configuration.name);
    // Heartbeats rewrite records all the time: redraw (and lose focus) only on a change.
    const shown = bound.map((r) => `${r.instanceId}:${r.status}`).join(" ");
    if (shown === boundShown) return;
    boundShown = shown;
    fill(
      boundSection,
      h("h2", { id: "bound-heading" }, `Bound by (${bound.length})`),
      bound.length
        ? h("ul", { class: "bound" }, bound.map((r) => h("li", {}, h("a", { href: `/instances/${encodeURIComponent(r.instanceId)}` }, r.instanceId), " ", badge(r.status))))
        : h("p", { class: "empty" }, "No running instance follows this configuration."),
    );
  }

  async function loadHistory() {
    const reply = await mgmt("configs", "history", { id: config });
    if (!alive) return;
    if (!reply.ok) return problem(historySection, reply);
    fill(
      historySection,
      h("h2", { id: "history-heading" }, "Revision history"),
      h("p", { class: "hint" }, "The last 10 revisions, newest first."),
      h(
        "ol",
        { class: "history" },
        reply.data.items.map((item) =>
          h(
            "li",
            {},
            h(
              "details",
              {},
              h("summary", {}, `Revision ${item.revision} · ${when(item.configuration.updatedAt)}`),
              item.configuration.comments ? h("p", {}, item.configuration.comments) : null,
              h("pre", { class: "json" }, JSON.stringify(item.configuration.config, null, 2)),
            ),
          ),
        ),
      ),
    );
  }

  load();
  return {
    title: "Configuration",
    update(change) {
      if (change.type === "snapshot" || change.type === "instance" || change.type === "gone") drawBound();
    },
    unmount() {
      alive = false;
    },
  };
}
