// The fleet as the monitor pushes it (server-sent events), and who wants to know.
//
// The monitor sends a snapshot first, then each change. EventSource reconnects by
// itself when the stream breaks (the monitor restarted, the network blinked); the
// next snapshot then replaces everything, so nothing is missed or doubled.

export const store = {
  instances: new Map(), // instanceId -> registry record (with its KV revision)
  definitions: new Map(), // serviceName -> {definition, revision}
  stats: { at: null, instances: {} }, // instanceId -> [requests, errors, processing ns]
  status: { connected: true, synced: false }, // the monitor's NATS connection and watch
  access: { resources: { services: true, apps: true, configs: true }, known: false },
  stream: "connecting", // "connecting" | "open" | "lost": the page's link to the monitor
  namespace: "",
  clockOffset: 0, // monitor clock - browser clock (ms), for heartbeat ages
  loaded: false,
};

const listeners = new Set();

/** Call `listener(change)` after each change; returns the function that stops it. */
export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function emit(change) {
  for (const listener of [...listeners]) listener(change);
}

export function now() {
  return Date.now() + store.clockOffset;
}

/** Instances of one service, sorted by id. */
export function instancesOf(service) {
  return [...store.instances.values()]
    .filter((record) => record.serviceName === service)
    .sort((a, b) => a.instanceId.localeCompare(b.instanceId));
}

export function canWrite(resource) {
  return store.access.resources[resource] !== false;
}

const handlers = {
  snapshot(data) {
    store.instances = new Map(data.instances.map((r) => [r.instanceId, r]));
    store.definitions = new Map(data.definitions.map((d) => [d.definition.serviceName, d]));
    store.stats = data.stats;
    store.status = data.status;
    store.access = data.access;
    store.namespace = data.namespace;
    store.clockOffset = data.now - Date.now();
    store.loaded = true;
    return { type: "snapshot" };
  },
  instance(record) {
    const known = store.instances.get(record.instanceId);
    if (known && known.revision >= record.revision) return null;
    store.instances.set(record.instanceId, record);
    return { type: "instance", id: record.instanceId, added: !known };
  },
  gone(data) {
    if (!store.instances.delete(data.instanceId)) return null;
    delete store.stats.instances[data.instanceId];
    return { type: "gone", id: data.instanceId, reason: data.reason };
  },
  definition(item) {
    store.definitions.set(item.definition.serviceName, item);
    return { type: "definition", name: item.definition.serviceName };
  },
  undefined(data) {
    store.definitions.delete(data.serviceName);
    return { type: "definition", name: data.serviceName };
  },
  stats(data) {
    store.stats = data;
    return { type: "stats" };
  },
  status(data) {
    store.status = data;
    return { type: "status" };
  },
  access(data) {
    store.access = data;
    return { type: "access" };
  },
};

/** Open the event stream; the store follows it from now on. */
export function connect() {
  const source = new EventSource("/api/events");
  for (const [event, handle] of Object.entries(handlers)) {
    source.addEventListener(event, (message) => {
      const change = handle(JSON.parse(message.data));
      if (change) emit(change);
    });
  }
  source.addEventListener("open", () => {
    store.stream = "open";
    emit({ type: "stream" });
  });
  source.addEventListener("error", () => {
    // EventSource retries by itself (the monitor asks for a retry after 1 s).
    store.stream = source.readyState === EventSource.CLOSED ? "closed" : "lost";
    emit({ type: "stream" });
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  });
  return source;
}

const RESOURCE_NAMES = {
  services: "service definitions",
  apps: "applications",
  configs: "configurations",
};

/** Mark `button` as a write to `resource`: disabled while the credentials may not write it. */
export function needsWrite(button, resource, noteId) {
  button.dataset.needsWrite = resource;
  if (noteId) button.setAttribute("aria-describedby", noteId);
  button.disabled = !canWrite(resource);
  return button;
}

/** The note that says why editing is off (shown only while it is). */
export function readOnlyNote(resource, id) {
  const note = document.createElement("p");
  note.className = "read-only";
  note.id = id;
  note.dataset.readOnly = resource;
  note.textContent = `Read-only: this monitor's NATS credentials may not write ${RESOURCE_NAMES[resource]}.`;
  note.hidden = canWrite(resource);
  return note;
}

/** Bring every marked button and note in `root` up to date with the write access. */
export function applyAccess(root = document) {
  for (const button of root.querySelectorAll("[data-needs-write]")) {
    button.disabled = !canWrite(button.dataset.needsWrite);
  }
  for (const note of root.querySelectorAll("[data-read-only]")) note.hidden = canWrite(note.dataset.readOnly);
}
