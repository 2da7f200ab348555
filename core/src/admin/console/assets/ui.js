// Shared helpers of the console: building elements (never innerHTML with data), calling the
// admin API with the session's CSRF token, toasts, dialogs, live (polled) sections.

/** The session document of GET /admin/api/session, set by app.js after login. */
export const session = { current: null };

/** How often a page's live data is fetched again (milliseconds). */
export const POLL_MS = 3000;

/**
 * An element: h("button", { class: "primary", onclick: f, type: "button" }, "Save").
 * Children are nodes, strings (as text), arrays of those, or null/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value" && !svg) {
      el.value = value;
    } else if (key === "checked" || key === "selected" || key === "disabled") {
      el[key] = Boolean(value);
      if (value) el.setAttribute(key, "");
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An API error: the status, the stable code and message of the `{"error": …}` body. */
export class ApiFailure extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || `http_${status}`;
    this.body = body;
  }
}

/**
 * Calls the admin API (same origin, the session cookie); sends the CSRF token on every change.
 * Resolves to the JSON body; rejects with ApiFailure. A 401 sends the browser to the login page.
 */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session.current) headers["X-CSRF-Token"] = session.current.csrf_token;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiFailure(0, { error: { code: "network", message: `the server cannot be reached (${e.message})` } });
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = { error: { message: text } };
  }
  // A 401 `unauthorized` means the session ended; other 401s (a wrong signing password) do not.
  const code = json && json.error && json.error.code;
  if (res.status === 401 && code === "unauthorized" && !path.startsWith("/admin/api/session")) {
    session.current = null;
    location.assign("/admin/login");
  }
  if (!res.ok) throw new ApiFailure(res.status, json);
  return json;
}

/** A short message at the corner; `kind` is "ok" or "error". */
export function toast(message, kind = "ok") {
  const box = document.getElementById("toasts");
  const t = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.append(t);
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 4000);
}

/** An error as shown in a page: its message and code. */
export function errorBox(e) {
  const code = e && e.code ? h("code", {}, e.code) : null;
  const err = (e && e.body && e.body.error) || {};
  // Schema errors (`errors`: pointer + message) and pipeline problems, listed under the message.
  const details = [].concat(err.errors || [], err.problems || []);
  return h(
    "div",
    { class: "error-box", role: "alert" },
    h("strong", {}, "Error: "),
    e.message || String(e),
    " ",
    code,
    details.length
      ? h("ul", { class: "errors" }, details.map((d) => h("li", {}, d.pointer !== undefined ? h("code", {}, d.pointer || "(whole value)") : null, " ", d.message || compact(d))))
      : null,
  );
}

/** "Loading…" */
export function loading() {
  return h("p", { class: "loading", "aria-busy": "true" }, "Loading…");
}

/** Whether the logged-in actor may change host-wide things (role admin, no site scope). */
export function mayAdminister() {
  return Boolean(session.current && session.current.may_administer);
}

/** A note shown to actors who may only look. */
export function readOnlyNote(what = "this page") {
  return mayAdminister()
    ? ""
    : h("p", { class: "read-only", id: "read-only" }, `Read-only: your roles let you see ${what}, not change it.`);
}

/**
 * A yes/no question in a modal dialog; resolves to true when confirmed.
 */
export function confirmDialog(title, body, confirmLabel) {
  return new Promise((resolve) => {
    const dlg = h(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      h("div", { class: "dialog-body" }, body),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "danger", id: "confirm-yes", onclick: () => done(true) }, confirmLabel),
        h("button", { type: "button", id: "confirm-no", onclick: () => done(false) }, "Cancel"),
      ),
    );
    function done(answer) {
      dlg.close();
      dlg.remove();
      resolve(answer);
    }
    dlg.addEventListener("cancel", () => done(false));
    document.body.append(dlg);
    dlg.showModal();
  });
}

/**
 * A section that shows `fetcher()`'s data through `draw(data)` and fetches again every
 * POLL_MS while the page is shown; it redraws only when the data changed, so focus and
 * scroll stay put between changes. Returns { el, refresh }.
 */
export function live(fetcher, draw, attrs = {}) {
  const el = h("div", { "aria-live": "polite", ...attrs }, loading());
  let last = null;
  async function refresh(force = false) {
    try {
      const data = await fetcher();
      const key = JSON.stringify(data);
      if (!force && key === last) return;
      last = key;
      fill(el, draw(data));
    } catch (e) {
      last = null;
      fill(el, errorBox(e));
    }
  }
  return { el, refresh };
}

/** A labelled form field: label, control, and a slot for its error under it. */
export function field(labelText, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2)}`;
  control.id = id;
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, labelText),
    hint ? h("p", { class: "hint" }, hint) : null,
    control,
    error,
  );
}

/** Shows `message` under the field whose control is `control` (or clears it with null). */
export function setFieldError(control, message) {
  const error = document.getElementById(`${control.id}-error`);
  if (!error) return;
  if (message) {
    error.hidden = false;
    error.textContent = message;
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", error.id);
  } else {
    error.hidden = true;
    error.textContent = "";
    control.removeAttribute("aria-invalid");
  }
}

/** A JSON value, compact, for tables. */
export function compact(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  const s = JSON.stringify(value);
  return s === "{}" ? "" : s;
}

/** A status word as a coloured badge. */
export function badge(text) {
  const t = String(text ?? "unknown");
  return h("span", { class: `badge b-${t.replace(/[^a-z_-]/gi, "")}` }, t);
}

/** "#/path" links. */
export function link(href, text) {
  return h("a", { href }, text);
}

/** Percent-encodes a path segment. */
export const seg = encodeURIComponent;

/** Pretty JSON. */
export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/**
 * A table that turns into label/value rows on a phone. `rows` are arrays of cells, or
 * `{ attrs, cells }`.
 */
export function table(headers, rows, attrs = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "responsive", ...attrs },
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h(
        "tbody",
        {},
        rows.map((r) => {
          const cells = Array.isArray(r) ? r : r.cells;
          return h(
            "tr",
            Array.isArray(r) ? {} : r.attrs,
            // One wrapper per cell: on a phone the cell is a label/value grid of two items.
            cells.map((c, i) => h("td", { "data-label": headers[i] }, h("div", { class: "cell" }, c))),
          );
        }),
      ),
    ),
  );
}
