// Sites: the list (and a new site, for admins); one site's extensions with their state, the
// activation form (the validation report is shown before Activate is offered), the sign-off
// form (the password entered again for each signature), the compliance report and snapshots.

import {
  api, h, fill, live, table, badge, toast, errorBox, field, setFieldError, mayAdminister,
  compact, pretty, seg, session,
} from "../ui.js";

const MEANINGS = ["review", "approval", "responsibility", "authorship"];

function short(hash) {
  return hash ? h("code", { title: hash }, `${hash.slice(0, 12)}…`) : h("span", { class: "muted" }, "—");
}

function mayManage() {
  const s = session.current;
  return Boolean(s && (s.may_administer || s.roles.includes("site-admin")));
}

function listPage(root) {
  const sites = live(
    () => api("GET", "/api/v1/sites"),
    (d) =>
      d.sites.length
        ? table(
            ["Site", "Name", "Status"],
            d.sites.map((s) => [h("a", { href: `#/sites/${seg(s.slug)}` }, h("strong", {}, s.slug)), s.name, badge(s.status)]),
            { id: "sites" },
          )
        : h("p", { class: "muted" }, "No sites yet."),
  );
  const slug = h("input", { id: "site-slug", required: true, placeholder: "lab-north" });
  const name = h("input", { id: "site-name", required: true, placeholder: "North lab" });
  const out = h("div", {});
  const create = mayAdminister()
    ? h(
        "form",
        {
          class: "card",
          id: "site-create",
          onsubmit: async (ev) => {
            ev.preventDefault();
            out.replaceChildren();
            try {
              await api("POST", "/api/v1/sites", { slug: slug.value.trim(), name: name.value.trim() });
              toast(`Site ${slug.value} created`);
              slug.value = name.value = "";
              sites.refresh(true);
            } catch (e) {
              fill(out, errorBox(e));
            }
          },
        },
        h("h2", {}, "New site"),
        h("div", { class: "filters" }, field("Slug", slug), field("Name", name), h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create site"))),
        out,
      )
    : null;
  root.append(h("h1", {}, "Sites"), h("section", { class: "card" }, sites.el), create);
  sites.refresh();
  return { refresh: sites.refresh };
}

function reportView(report) {
  const findings = (title, list) =>
    list && list.length
      ? h("div", {}, h("h3", {}, title), h("ul", { class: "errors" }, list.map((f) => h("li", {}, f.pointer ? h("code", {}, f.pointer) : null, " ", f.message || compact(f), f.code ? h("span", { class: "muted" }, ` (${f.code})`) : null))))
      : null;
  return h(
    "div",
    { id: "validation-report", class: report.valid ? "ok-box" : "error-box" },
    h("p", {}, h("strong", {}, report.valid ? "Valid." : "Not valid."), " Config hash ", short(report.config_hash)),
    findings("Errors", report.errors),
    findings("Conflicts", report.conflicts),
    findings("Warnings", report.warnings),
    report.missing_signoffs && report.missing_signoffs.length
      ? h("div", {}, h("h3", {}, "Sign-offs still needed"), h("ul", { id: "missing-signoffs" }, report.missing_signoffs.map((m) => h("li", {}, `${m.aspect} — ${m.role || (m.roles || []).join(" / ")}`))))
      : null,
    h("details", {}, h("summary", {}, "Full report"), h("pre", {}, pretty(report))),
  );
}

async function sitePage(root, slug) {
  const base = `/api/v1/sites/${seg(slug)}`;
  const manage = mayManage();
  let selected = null;
  root.append(h("p", {}, h("a", { href: "#/sites" }, "← All sites")));

  const status = live(
    () => api("GET", `${base}/status`),
    (st) => [
      h("div", { class: "spread" }, h("h1", { id: "site-title" }, st.site), badge(st.status)),
      st.extensions.length
        ? table(
            ["Extension", "State", "Config", "Proposed", "Missing sign-offs", ""],
            st.extensions.map((x) => ({
              attrs: { id: `site-ext-${x.extension}`, dataset: { state: x.state } },
              cells: [
                h("strong", {}, x.extension),
                badge(x.state),
                short(x.config_hash),
                short(x.proposed_hash),
                x.missing_signoffs.length ? x.missing_signoffs.map((m) => h("div", {}, `${m.aspect} (${m.role || (m.roles || []).join("/")})`)) : "—",
                h(
                  "div",
                  { class: "row" },
                  h("button", { type: "button", onclick: () => select(x.extension) }, "Sign-offs"),
                  x.state === "active" && manage
                    ? h("button", { type: "button", class: "danger", onclick: () => deactivate(x.extension) }, "Deactivate")
                    : null,
                ),
              ],
            })),
            { id: "site-extensions" },
          )
        : h("p", { class: "muted" }, "No extension is active or proposed at this site."),
    ],
    { class: "card" },
  );

  async function deactivate(name) {
    try {
      await api("DELETE", `${base}/extensions/${seg(name)}?reason=${seg("from the console")}`);
      toast(`${name} deactivated at ${slug}`);
    } catch (e) {
      toast(e.message, "error");
    }
    status.refresh(true);
  }

  // Activation: validate first, then activate the same config.
  let candidates = [];
  try {
    const list = await api("GET", "/api/v1/extensions");
    const details = await Promise.all(list.extensions.map((e) => api("GET", `/api/v1/extensions/${seg(e.name)}`).catch(() => null)));
    // Those declaring site rules (site-scoped, sign-offs, capabilities) first.
    const siteRules = (d) => d && d.sites && (d.sites.site_scoped || d.sites.signoffs.length || d.sites.provides.length || d.sites.requires_capabilities.length);
    candidates = [...details.filter(siteRules), ...details.filter((d) => d && !siteRules(d))].map((d) => (d.summary || d).name);
  } catch {
    candidates = [];
  }
  const ext = candidates.length
    ? h("select", { id: "activate-extension" }, candidates.map((c) => h("option", { value: c }, c)))
    : h("input", { id: "activate-extension", placeholder: "extension name" });
  const config = h("textarea", { id: "activate-config", class: "code", rows: 5 }, "{}");
  const reason = h("input", { id: "activate-reason", placeholder: "why (kept in the audit trail)" });
  const report = h("div", { id: "activation-result", "aria-live": "polite" });
  const validateBtn = h("button", { type: "button", id: "validate-btn" }, "Validate");
  const activateBtn = h("button", { type: "submit", class: "primary", id: "activate-btn", disabled: true, title: "validate first" }, "Activate");
  let validatedFor = null;
  const key = () => `${ext.value}\n${config.value}`;
  const reset = () => {
    if (validatedFor !== key()) {
      activateBtn.disabled = true;
    }
  };
  config.addEventListener("input", reset);
  ext.addEventListener("change", () => {
    reset();
    select(ext.value);
  });
  function parsed() {
    setFieldError(config, null);
    try {
      return JSON.parse(config.value);
    } catch (e) {
      setFieldError(config, `not valid JSON: ${e.message}`);
      return undefined;
    }
  }
  validateBtn.addEventListener("click", async () => {
    const c = parsed();
    if (c === undefined) return;
    fill(report, h("p", { class: "loading" }, "Validating…"));
    try {
      const r = await api("POST", `${base}/extensions/${seg(ext.value)}/validate`, { config: c });
      fill(report, reportView(r));
      validatedFor = key();
      // Missing sign-offs do not block: activating then keeps the config as the proposal to sign.
      activateBtn.disabled = !manage || (r.errors || []).length + (r.conflicts || []).length > 0;
      activateBtn.title = manage ? "" : "read-only: needs role site-admin or admin";
    } catch (e) {
      fill(report, errorBox(e));
    }
  });
  const activateForm = h(
    "form",
    {
      class: "card",
      id: "activate-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const c = parsed();
        if (c === undefined) return;
        try {
          await api("POST", `${base}/extensions/${seg(ext.value)}/activate`, { config: c, reason: reason.value });
          fill(report, h("div", { class: "ok-box", id: "activated" }, `${ext.value} is active at ${slug}.`));
          toast(`${ext.value} activated`);
        } catch (e) {
          fill(report, errorBox(e), e.body && e.body.report ? reportView(e.body.report) : null);
        }
        activateBtn.disabled = true;
        validatedFor = null;
        status.refresh(true);
        if (selected) drawSignForm(selected);
      },
    },
    h("h2", {}, "Activate an extension"),
    h("p", { class: "muted" }, "Validate shows the report (capabilities, conflicts, config, sign-offs); Activate is offered once the shown config validated. An extension that needs sign-offs keeps the config as a proposal to sign."),
    field("Extension", ext),
    field("Config (JSON)", config),
    field("Reason", reason),
    h("div", { class: "actions" }, validateBtn, activateBtn),
    report,
  );

  // Sign-offs of the selected extension.
  const signArea = h("div", { id: "signoff-area" }, h("p", { class: "muted" }, "Choose an extension (Sign-offs) to see and give its sign-offs."));
  let signoffs = { refresh() {} };
  function select(name) {
    if (!name || selected === name) return;
    selected = name;
    signoffs = live(
      () => api("GET", `${base}/extensions/${seg(name)}/signoffs`),
      (list) =>
        list.signoffs.length
          ? table(
              ["Signed", "By", "Aspect", "Role", "Meaning", "Counts"],
              list.signoffs.map((s) => [s.signed_at, `${s.printed_name} (${s.username})`, s.aspect, s.role, s.meaning, badge(String(s.valid))]),
              { id: "signoff-list" },
            )
          : h("p", { class: "muted", id: "signoff-list-empty" }, "No sign-offs yet."),
    );
    drawSignForm(name);
    signoffs.refresh();
  }
  async function drawSignForm(name) {
    let list;
    try {
      list = await api("GET", `${base}/extensions/${seg(name)}/signoffs`);
    } catch (e) {
      fill(signArea, errorBox(e));
      return;
    }
    const pair = h("select", { id: "sign-requirement" }, list.required.map((r, i) => h("option", { value: String(i) }, `${r.aspect} — as ${r.role}`)));
    const meaning = h("select", { id: "sign-meaning" }, MEANINGS.map((m) => h("option", { value: m }, m)));
    const hashes = [
      list.proposed_hash ? ["proposed", list.proposed_hash] : null,
      list.active_hash ? ["active", list.active_hash] : null,
    ].filter(Boolean);
    const hash = h("select", { id: "sign-hash" }, hashes.map(([k, v]) => h("option", { value: v }, `${k} config ${v.slice(0, 12)}…`)));
    const password = h("input", { id: "sign-password", type: "password", autocomplete: "current-password", required: true });
    const notes = h("input", { id: "sign-notes" });
    const out = h("div", { id: "sign-result", "aria-live": "polite" });
    const isOperator = session.current && session.current.kind === "operator";
    const form = h(
      "form",
      {
        id: "signoff-form",
        onsubmit: async (ev) => {
          ev.preventDefault();
          out.replaceChildren();
          setFieldError(password, null);
          const r = list.required[Number(pair.value)];
          try {
            await api("POST", `${base}/extensions/${seg(name)}/signoffs`, {
              aspect: r.aspect, role: r.role, meaning: meaning.value, config_hash: hash.value, password: password.value, notes: notes.value,
            });
            password.value = "";
            fill(out, h("div", { class: "ok-box", id: "signed" }, `Signed ${r.aspect} as ${r.role}.`));
            toast("Sign-off recorded");
            signoffs.refresh(true);
            status.refresh(true);
          } catch (e) {
            if (e.code === "wrong_password") setFieldError(password, e.message);
            else fill(out, errorBox(e));
          }
        },
      },
      field("Aspect and role", pair),
      h("div", { class: "filters" }, field("Meaning", meaning), field("Config signed", hash)),
      field("Your password, again", password, "Each signature asks for the password (21 CFR Part 11 §11.200)."),
      field("Notes", notes),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "sign-btn", disabled: !isOperator || !hashes.length }, "Sign")),
      !isOperator ? h("p", { class: "muted" }, "Only an operator can sign (log in with a username and password).") : null,
      !hashes.length ? h("p", { class: "muted" }, "Nothing to sign yet: validate and activate a config first (it becomes the proposal).") : null,
      out,
    );
    fill(
      signArea,
      h("h3", {}, `Sign-offs of ${name}`),
      list.required.length ? form : h("p", { class: "muted" }, `${name} requires no sign-offs.`),
      h("h3", {}, "Given"),
      signoffs.el,
    );
  }

  const snapshots = live(
    () => api("GET", `${base}/snapshots`),
    (d) =>
      d.snapshots.length
        ? table(["Taken", "Label", "By", "Extensions"], d.snapshots.map((s) => [s.taken_at, s.label || "—", s.taken_by, String(s.extensions)]), { id: "snapshot-list" })
        : h("p", { class: "muted" }, "No snapshots."),
  );
  const label = h("input", { id: "snapshot-label", placeholder: "before the audit" });
  const snapForm = manage
    ? h(
        "form",
        {
          class: "row",
          onsubmit: async (ev) => {
            ev.preventDefault();
            try {
              await api("POST", `${base}/snapshots`, { label: label.value });
              toast("Snapshot taken");
              label.value = "";
              snapshots.refresh(true);
            } catch (e) {
              toast(e.message, "error");
            }
          },
        },
        field("Label", label),
        h("button", { type: "submit" }, "Take snapshot"),
      )
    : null;
  async function csv() {
    try {
      const res = await fetch(`${base}/compliance-report`, { headers: { Accept: "text/csv" }, credentials: "same-origin" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const url = URL.createObjectURL(await res.blob());
      const a = h("a", { href: url, download: `compliance-${slug}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (e) {
      toast(e.message, "error");
    }
  }
  root.append(
    status.el,
    h(
      "div",
      { class: "grid" },
      activateForm,
      h("section", { class: "card", id: "signoffs" }, h("h2", {}, "Sign-offs"), signArea),
    ),
    h(
      "div",
      { class: "grid" },
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Compliance report"),
        h("p", { class: "muted" }, "Every active extension with its config, sign-offs and audit trail."),
        h("div", { class: "actions" }, h("a", { class: "button", id: "report-json", href: `${base}/compliance-report`, download: `compliance-${slug}.json` }, "Download JSON"), h("button", { type: "button", onclick: csv }, "Download CSV")),
      ),
      h("section", { class: "card", id: "snapshots" }, h("h2", {}, "Snapshots"), snapForm, snapshots.el),
    ),
  );
  status.refresh();
  snapshots.refresh();
  if (candidates.length) select(candidates[0]);
  return {
    refresh: () => {
      status.refresh();
      snapshots.refresh();
      signoffs.refresh();
    },
  };
}

export function mount(root, [slug]) {
  return slug ? sitePage(root, slug) : listPage(root);
}
