// Audit log: filters (actor, action — a trailing * matches a prefix —, target, time range),
// pages of 50 by id, and "Verify chain", which checks the hash chain end to end.

import { api, h, fill, live, table, badge, errorBox, field, compact } from "../ui.js";

const FILTERS = ["actor", "action", "target", "since", "until"];

/** datetime-local value (local time) → RFC 3339 UTC, or "" */
function toRfc3339(local) {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

function toLocal(rfc) {
  if (!rfc) return "";
  const d = new Date(rfc);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function mount(root, _match, params) {
  const inputs = {};
  for (const k of FILTERS) {
    const time = k === "since" || k === "until";
    inputs[k] = h("input", {
      id: `filter-${k}`,
      name: k,
      type: time ? "datetime-local" : "text",
      value: time ? toLocal(params.get(k)) : params.get(k) || "",
      placeholder: { actor: "operator:ann, admin, cli", action: "extension.*", target: "an extension name" }[k] || null,
    });
  }
  const before = params.get("before");
  function query(extra = {}) {
    const q = new URLSearchParams();
    for (const k of FILTERS) {
      const v = k === "since" || k === "until" ? toRfc3339(inputs[k].value) : inputs[k].value.trim();
      if (v) q.set(k, v);
    }
    for (const [k, v] of Object.entries(extra)) if (v) q.set(k, v);
    return q;
  }
  const applied = new URLSearchParams();
  for (const k of [...FILTERS, "before"]) if (params.get(k)) applied.set(k, params.get(k));
  const entries = live(
    () => api("GET", `/api/v1/audit?${applied.toString()}${applied.toString() ? "&" : ""}limit=50`),
    (page) => [
      page.entries.length
        ? table(
            ["#", "When (UTC)", "Actor", "Action", "Target", "Details"],
            page.entries.map((e) => ({ attrs: { class: "audit-row", dataset: { id: e.id } }, cells: [String(e.id), h("span", { class: "nowrap" }, e.at.replace("T", " ").replace(/\.\d+Z$/, "")), h("span", { class: "nowrap" }, e.actor), h("code", {}, e.action), e.target, h("code", {}, compact(e.details))] })),
            { id: "audit-entries" },
          )
        : h("p", { class: "muted", id: "audit-empty" }, "No entries match."),
      h(
        "div",
        { class: "actions" },
        before ? h("a", { class: "button", href: `#/audit?${query().toString()}`, id: "audit-newest" }, "← Newest") : null,
        page.next_before ? h("a", { class: "button", href: `#/audit?${query({ before: page.next_before }).toString()}`, id: "audit-older" }, "Older →") : null,
      ),
    ],
  );
  const verdict = h("div", { id: "verify-result", "aria-live": "polite" });
  async function verify() {
    fill(verdict, h("p", { class: "loading" }, "Checking every entry…"));
    try {
      const v = await api("GET", "/api/v1/audit/verify");
      fill(
        verdict,
        v.ok
          ? h("div", { class: "ok-box" }, badge("intact"), ` The chain is intact: ${v.rows} entries checked.`)
          : h("div", { class: "error-box" }, badge("broken"), ` The chain is broken at entry ${v.first_broken && v.first_broken.id}: ${compact(v.first_broken && v.first_broken.reason)} (${v.rows_checked} read).`),
      );
    } catch (e) {
      fill(verdict, errorBox(e));
    }
  }
  const form = h(
    "form",
    {
      class: "filters",
      id: "audit-filters",
      onsubmit: (ev) => {
        ev.preventDefault();
        location.hash = `#/audit?${query().toString()}`;
      },
    },
    field("Actor", inputs.actor),
    field("Action", inputs.action),
    field("Target", inputs.target),
    field("From", inputs.since),
    field("Until", inputs.until),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "audit-apply" }, "Filter"), h("a", { class: "button", href: "#/audit" }, "Clear")),
  );
  root.append(
    h("div", { class: "spread" }, h("h1", {}, "Audit log"), h("button", { type: "button", id: "verify-chain", onclick: verify }, "Verify chain")),
    verdict,
    h("section", { class: "card" }, h("h2", { class: "muted" }, "Filters"), form),
    h("section", { class: "card" }, entries.el),
  );
  entries.refresh();
  // Only the newest page changes by itself.
  return { refresh: before ? null : entries.refresh };
}

