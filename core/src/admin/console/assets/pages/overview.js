// Overview: every extension with its state, health, version and routes; enable and disable
// (disabling one that enabled extensions depend on asks first, naming them, then cascades).

import { api, h, live, table, badge, toast, confirmDialog, mayAdminister, readOnlyNote, seg } from "../ui.js";

async function fetchAll() {
  const list = await api("GET", "/api/v1/extensions");
  const details = await Promise.all(
    list.extensions.map((e) => api("GET", `/api/v1/extensions/${seg(e.name)}`).catch(() => null)),
  );
  return list.extensions.map((summary, i) => ({ summary, details: details[i] }));
}

async function switchTo(name, enable, all, refresh) {
  try {
    if (enable) {
      await api("POST", `/api/v1/extensions/${seg(name)}/enable`);
      toast(`${name} enabled`);
    } else {
      const row = all.find((x) => x.summary.name === name);
      const byName = new Map(all.map((x) => [x.summary.name, x.summary]));
      const dependents = ((row && row.details && row.details.dependents) || []).filter(
        (d) => byName.get(d) && byName.get(d).enabled,
      );
      let cascade = false;
      if (dependents.length) {
        const ok = await confirmDialog(
          `Disable ${name}?`,
          [
            h("p", { id: "dependents-warning" }, `These enabled extensions depend on ${name} and will be disabled too:`),
            h("ul", {}, dependents.map((d) => h("li", {}, h("strong", {}, d)))),
          ],
          `Disable ${name} and ${dependents.length} more`,
        );
        if (!ok) return;
        cascade = true;
      }
      const report = await api("POST", `/api/v1/extensions/${seg(name)}/disable${cascade ? "?cascade=true" : ""}`);
      toast(`Disabled: ${(report.disabled && report.disabled.length ? report.disabled : [name]).join(", ")}`);
    }
  } catch (e) {
    if (e.code === "has_dependents") {
      // Someone enabled a dependent meanwhile: ask with the server's list.
      const ok = await confirmDialog(`Disable ${name}?`, h("p", { id: "dependents-warning" }, e.message), "Disable all");
      if (ok) {
        try {
          await api("POST", `/api/v1/extensions/${seg(name)}/disable?cascade=true`);
          toast(`${name} and its dependents disabled`);
        } catch (e2) {
          toast(e2.message, "error");
        }
      }
    } else {
      toast(e.message, "error");
    }
  }
  refresh(true);
}

export function mount(root) {
  const admin = mayAdminister();
  let all = [];
  const section = live(
    async () => (all = await fetchAll()),
    (rows) =>
      table(
        ["Extension", "State", "Health", "Version", "Routes", "Action"],
        rows.map(({ summary: s, details: d }) => ({
          attrs: { id: `ext-${s.name}`, dataset: { state: s.state } },
          cells: [
            [h("a", { href: `#/extensions/${seg(s.name)}`, class: "ext-name" }, h("strong", {}, s.name)), h("div", { class: "muted break" }, s.description)],
            [badge(s.state), s.reason ? h("div", { class: "muted break" }, s.reason) : null],
            badge(s.health),
            h("code", {}, s.version),
            d && d.routes.length
              ? h(
                  "details",
                  {},
                  h("summary", {}, `${d.routes.length} route${d.routes.length === 1 ? "" : "s"}`),
                  h("ul", { class: "plain" }, d.routes.map((r) => h("li", {}, h("code", {}, `${r.method} ${r.path}`)))),
                )
              : h("span", { class: "muted" }, "none"),
            h(
              "button",
              {
                type: "button",
                class: s.enabled ? "danger switch" : "primary switch",
                disabled: !admin,
                title: admin ? null : "read-only: needs role admin",
                "aria-label": `${s.enabled ? "Disable" : "Enable"} ${s.name}`,
                onclick: () => switchTo(s.name, !s.enabled, all, section.refresh),
              },
              s.enabled ? "Disable" : "Enable",
            ),
          ],
        })),
        { id: "extensions" },
      ),
  );
  root.append(
    h("div", { class: "spread" }, h("h1", {}, "Extensions"), h("span", { class: "muted" }, "Live: refreshed every 3 s")),
    readOnlyNote("the extensions"),
    h("div", { class: "card" }, section.el),
  );
  section.refresh();
  return { refresh: section.refresh };
}
