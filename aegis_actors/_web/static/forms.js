// Forms and dialogs: labelled fields, the API's 422 beside the field it names, the
// 409 revision conflict explained with the newer values, confirmations for deletes.

import { mgmt } from "./api.js";
import { fill, h, when } from "./dom.js";
import { navigate } from "./router.js";
import { needsWrite } from "./store.js";

let uid = 0;

/** A labelled input (or textarea) with its hint and the place for its error. */
export function field({ name, label, value = "", hint = "", multiline = false, required = false, ...attrs }) {
  const id = `f${++uid}-${name}`;
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  const input = h(multiline ? "textarea" : "input", {
    id,
    name,
    required,
    "aria-describedby": [hintEl ? `${id}-hint` : "", `${id}-error`].join(" ").trim(),
    ...(multiline ? {} : { type: "text", value }),
    ...attrs,
  });
  if (multiline) input.value = value;
  const wrapper = h("div", { class: "field" }, h("label", { for: id }, label), hintEl, input, error);
  return { wrapper, input, error, name };
}

/** Show `message` beside `f` (or clear it with null). */
export function fieldError(f, message) {
  f.error.hidden = !message;
  f.error.textContent = message || "";
  if (message) f.input.setAttribute("aria-invalid", "true");
  else f.input.removeAttribute("aria-invalid");
}

/**
 * Show an error reply on a form: 422 problems beside the fields they name, anything
 * else in the form's alert. Returns true if a field took (part of) it.
 */
export function showReply(reply, fields, alertEl) {
  for (const f of fields) fieldError(f, null);
  const error = reply.error || { message: "unknown error", details: {} };
  const details = error.details || {};
  const problems = details.errors || (details.field ? [{ field: details.field, message: error.message }] : []);
  let placed = false;
  if (error.code === "VALIDATION_ERROR" || error.code === "ALREADY_EXISTS") {
    const named = error.code === "ALREADY_EXISTS" ? [{ field: fields[0]?.name, message: error.message }] : problems;
    for (const problem of named) {
      const top = String(problem.field || "").split(".")[0];
      const f = fields.find((candidate) => candidate.name === top);
      if (f && !f.error.textContent) {
        fieldError(f, problem.message);
        if (!placed) f.input.focus();
        placed = true;
      }
    }
  }
  if (alertEl) {
    fill(alertEl, placed ? "" : `${reply.status} ${error.code}: ${error.message}`);
    alertEl.hidden = placed;
  }
  return placed;
}

/** A modal asking to confirm; `action()` resolves to an error reply to show, or nothing. */
export function confirmDialog({ title, body, confirm, action }) {
  const alertEl = h("div", { class: "alert", role: "alert", hidden: true });
  const heading = h("h2", { id: `confirm-${++uid}` }, title);
  const dialog = h("dialog", { class: "confirm", "aria-labelledby": heading.id });
  const cancelButton = h("button", { type: "button", onclick: () => dialog.close() }, "Cancel");
  const confirmButton = h(
    "button",
    {
      type: "button",
      class: "danger",
      onclick: async () => {
        confirmButton.disabled = true;
        const problem = await action(alertEl);
        confirmButton.disabled = false;
        if (problem) {
          alertEl.hidden = false;
          if (typeof problem === "string") fill(alertEl, problem);
          else fill(alertEl, problem);
        } else {
          dialog.close();
        }
      },
    },
    confirm,
  );
  fill(dialog, heading, h("div", { class: "dialog-body" }, body), alertEl, h("div", { class: "buttons" }, cancelButton, confirmButton));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.appendChild(dialog);
  dialog.showModal();
  cancelButton.focus();
  return dialog;
}

/** "Someone else changed it": the newer values, and what the user can do. */
export function conflictPanel({ what, mine, theirs, rows, onTheirs, onMine }) {
  return h(
    "div",
    { class: "conflict", role: "alert" },
    h("h3", {}, `Someone else changed this ${what}`),
    h(
      "p",
      {},
      `You edited revision ${mine}; it is now at revision ${theirs.revision}. ` +
        "Your changes were not saved. The newer values are:",
    ),
    h("dl", { class: "fields" }, rows.map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value)))),
    h(
      "div",
      { class: "buttons" },
      onTheirs && h("button", { type: "button", onclick: onTheirs }, "Start again from their version"),
      onMine && h("button", { type: "button", class: "danger", onclick: onMine }, "Save mine over theirs"),
    ),
  );
}

// -- service definitions -------------------------------------------------------------------

const DEFINITION_FIELDS = [
  ["owner", "Owner", "Who answers for the service (1-100 characters)."],
  ["version", "Version", "MAJOR.MINOR.PATCH, for example 1.4.2."],
  ["description", "Description", "What the service does (up to 500 characters)."],
];

/** The create form in a modal dialog (from the fleet view, or a service without one). */
export function definitionDialog(serviceName = "") {
  const heading = h("h2", { id: `define-${++uid}` }, "New service definition");
  const dialog = h("dialog", { class: "form-dialog", "aria-labelledby": heading.id });
  const form = definitionForm({
    definition: { serviceName },
    onDone: (definition) => {
      dialog.close();
      navigate(`/services/${encodeURIComponent(definition.serviceName)}`);
    },
    onCancel: () => dialog.close(),
  });
  fill(dialog, heading, form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.appendChild(dialog);
  dialog.showModal();
  form.querySelector("input:not([type=hidden])").focus();
  return dialog;
}

/**
 * The definition form: create (no `revision`) or edit (`revision` given). `onDone`
 * gets the saved definition; a conflict shows the newer values in the form.
 */
export function definitionForm({ definition, revision = null, onDone, onCancel }) {
  const editing = revision !== null;
  let base = revision;
  const nameField = field({
    name: "serviceName",
    label: "Service name",
    value: definition.serviceName || "",
    hint: "Lowercase letters, digits and '-', 3-64 characters, starting with a letter.",
    required: true,
    readonly: editing,
    autocomplete: "off",
    spellcheck: "false",
  });
  const fields = [nameField];
  for (const [name, label, hint] of DEFINITION_FIELDS) {
    fields.push(
      field({ name, label, hint, value: definition[name] || "", multiline: name === "description", required: name !== "description" }),
    );
  }
  const alertEl = h("div", { class: "alert", role: "alert", hidden: true });
  const conflict = h("div", { class: "conflict-slot" });
  const save = needsWrite(h("button", { type: "submit", class: "primary" }, editing ? "Save changes" : "Create definition"), "services");
  const form = h(
    "form",
    { class: "definition-form", novalidate: true, "aria-label": editing ? "Edit definition" : "New service definition" },
    fields.map((f) => f.wrapper),
    alertEl,
    conflict,
    h("div", { class: "buttons" }, onCancel && h("button", { type: "button", onclick: onCancel }, "Cancel"), save),
  );
  const values = () => Object.fromEntries(fields.map((f) => [f.name, f.input.value]));

  async function submit(revisionToUse) {
    save.disabled = true;
    conflict.replaceChildren();
    const body = values();
    let reply;
    if (editing) {
      const { serviceName, ...changes } = body;
      reply = await mgmt("services", "update", { serviceName, revision: revisionToUse, ...changes });
    } else {
      reply = await mgmt("services", "create", body);
    }
    needsWrite(save, "services");
    if (reply.ok) return onDone(reply.data, reply.revision);
    if (reply.error && reply.error.code === "REVISION_CONFLICT") return showConflict(body);
    showReply(reply, fields, alertEl);
  }

  async function showConflict(mine) {
    alertEl.hidden = true;
    const current = await mgmt("services", "get", { serviceName: mine.serviceName });
    if (!current.ok) return showReply(current, fields, alertEl);
    const theirs = current.data;
    fill(
      conflict,
      conflictPanel({
        what: "definition",
        mine: base,
        theirs: { revision: current.revision },
        rows: [
          ["Owner", theirs.owner],
          ["Version", theirs.version],
          ["Description", theirs.description || "–"],
          ["Updated", when(theirs.updatedAt)],
        ],
        onTheirs: () => {
          for (const f of fields) if (f.name in theirs) f.input.value = theirs[f.name];
          base = current.revision;
          conflict.replaceChildren();
          fields[1].input.focus();
        },
        onMine: () => {
          base = current.revision;
          submit(base);
        },
      }),
    );
    conflict.querySelector("button").focus();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(base);
  });
  return form;
}
