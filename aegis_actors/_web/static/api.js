// The monitor's HTTP API: management requests (relayed to aegis.mgmt.*) and stats samples.

/**
 * Send `verb` on `resource` of the management API; resolves to its envelope
 * ({ok, status, data, revision} or {ok: false, status, error: {code, message, details}}).
 * Network failures resolve to an envelope too, so every caller handles one shape.
 */
export async function mgmt(resource, verb, body = {}) {
  let response;
  try {
    response = await fetch(`/api/mgmt/${resource}/${verb}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (error) {
    return failure(503, "SERVICE_UNAVAILABLE", `the monitor did not answer: ${error.message}`);
  }
  try {
    return await response.json();
  } catch {
    return failure(response.status, "INTERNAL", `the monitor answered ${response.status}`);
  }
}

/** Every item of a paged `list`, following `nextCursor`. */
export async function listAll(resource, params = {}) {
  const items = [];
  let cursor = null;
  do {
    const reply = await mgmt(resource, "list", cursor ? { ...params, cursor } : params);
    if (!reply.ok) return reply;
    items.push(...reply.data.items);
    cursor = reply.data.nextCursor;
  } while (cursor);
  return { ok: true, status: 200, data: { items } };
}

/** `$SRV.STATS` of a service's instances (or of one instance, with its `$SRV.INFO`). */
export async function stats(kind, id) {
  try {
    const response = await fetch(`/api/stats/${kind}/${encodeURIComponent(id)}`);
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

function failure(status, code, message) {
  return { ok: false, status, error: { code, message, details: {} } };
}
