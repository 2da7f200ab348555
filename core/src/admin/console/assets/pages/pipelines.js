// Pipelines and stages: every stage with its health score and breaker state (this replica's live
// figures), enable/disable, and an editor for timeout, retries and config; the pipelines with
// their stage lists and deadline.

import { api, h, fill, live, table, badge, toast, errorBox, field, setFieldError, mayAdminister, readOnlyNote, compact, pretty, seg } from "../ui.js";

async function fetchAll() {
  const [stages, pipelines] = await Promise.all([api("GET", "/api/v1/stages"), api("GET", "/api/v1/pipelines")]);
  const health = await Promise.all(
    stages.stages.map((s) => api("GET", `/api/v1/stages/${seg(s.id)}/health`).catch(() => null)),
  );
  return { stages: stages.stages.map((s, i) => ({ stage: s, health: health[i] && health[i].live })), pipelines: pipelines.pipelines, registry: pipelines.registry };
}

function editor(stage, done) {
  const timeout = h("input", { id: `timeout-${stage.id}`, inputmode: "numeric", value: String(stage.timeout_ms) });
  const attempts = h("input", { id: `attempts-${stage.id}`, inputmode: "numeric", value: String(stage.retry.max_attempts) });
  const backoff = h("input", { id: `backoff-${stage.id}`, inputmode: "numeric", value: String(stage.retry.backoff_ms) });
  const config = h("textarea", { id: `config-${stage.id}`, class: "code", rows: 5 }, pretty(stage.config));
  const out = h("div", {});
  const num = (input) => {
    const t = input.value.trim();
    return /^\d+$/.test(t) ? Number(t) : t;
  };
  return h(
    "form",
    {
      class: "stage-editor",
      onsubmit: async (ev) => {
        ev.preventDefault();
        out.replaceChildren();
        setFieldError(config, null);
        let cfg;
        try {
          cfg = JSON.parse(config.value);
        } catch (e) {
          setFieldError(config, `not valid JSON: ${e.message}`);
          return;
        }
        try {
          await api("PUT", `/api/v1/stages/${seg(stage.id)}`, {
            timeout_ms: num(timeout),
            retry: { ...stage.retry, max_attempts: num(attempts), backoff_ms: num(backoff) },
            config: cfg,
          });
          toast(`Stage ${stage.id} saved`);
          done();
        } catch (e) {
          fill(out, errorBox(e));
        }
      },
    },
    h("div", { class: "filters" }, field("Timeout (ms)", timeout), field("Retry attempts", attempts), field("Backoff (ms)", backoff)),
    field("Config (JSON)", config),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "stage-save" }, "Save stage")),
    out,
  );
}

export function mount(root) {
  const admin = mayAdminister();
  const editing = h("div", { id: "stage-edit" });
  let data = null;
  async function toggle(stage) {
    try {
      await api("POST", `/api/v1/stages/${seg(stage.id)}/${stage.enabled ? "disable" : "enable"}`);
      toast(`${stage.id} ${stage.enabled ? "disabled" : "enabled"}`);
    } catch (e) {
      toast(e.message, "error");
    }
    section.refresh(true);
  }
  function edit(stage) {
    fill(editing, h("section", { class: "card" }, h("h2", {}, `Edit stage ${stage.id}`), editor(stage, () => {
      editing.replaceChildren();
      section.refresh(true);
    })));
    editing.querySelector("input").focus();
  }
  const section = live(
    async () => (data = await fetchAll()),
    (d) => [
      h("section", { class: "card" }, h("h2", {}, "Stages"),
        d.stages.length
          ? table(
              ["Stage", "Kind", "Transport", "Enabled", "Health score", "Breaker", "Timeout / retries", ""],
              d.stages.map(({ stage: s, health: f }) => ({
                attrs: { id: `stage-${s.id.replace(/[^a-zA-Z0-9_-]/g, "-")}`, dataset: { stage: s.id, enabled: String(s.enabled) } },
                cells: [
                  [h("strong", {}, s.id), s.extension ? h("div", { class: "muted" }, s.extension) : null],
                  compact(s.kind),
                  compact(s.transport),
                  badge(s.enabled ? "enabled" : "disabled"),
                  f ? `${(f.score * 100).toFixed(0)} % (${f.failures}/${f.calls} failed)` : "—",
                  f ? badge(compact(f.breaker)) : "—",
                  `${s.timeout_ms} ms / ${s.retry.max_attempts}`,
                  h("div", { class: "row" },
                    h("button", { type: "button", class: "toggle", disabled: !admin, onclick: () => toggle(s) }, s.enabled ? "Disable" : "Enable"),
                    h("button", { type: "button", class: "edit", disabled: !admin, onclick: () => edit(s) }, "Edit")),
                ],
              })),
              { id: "stages" },
            )
          : h("p", { class: "muted" }, "No stages registered.")),
      h("section", { class: "card" }, h("h2", {}, "Pipelines"),
        d.pipelines.length
          ? table(["Pipeline", "Stages", "Deadline"], d.pipelines.map((p) => [
            h("strong", {}, p.name),
            h("dl", { class: "kv" }, ["pre", "validators", "providers", "post"].filter((k) => (p[k] || []).length).map((k) => [
              h("dt", {}, k),
              h("dd", {}, p[k].map((x) => (typeof x === "string" ? x : x.stage || compact(x))).join(" → ")),
            ])),
            `${p.deadline_ms} ms`,
          ]), { id: "pipelines" })
          : h("p", { class: "muted" }, "No pipelines defined."),
        d.registry ? h("h3", {}, "Registry (this replica)") : null,
        d.registry
          ? h("dl", { class: "kv registry" }, Object.entries(d.registry).map(([k, v]) => [h("dt", {}, k.replace(/_/g, " ")), h("dd", {}, v === null ? "—" : compact(v) || String(v))]))
          : null),
    ],
  );
  root.append(h("h1", {}, "Pipelines and stages"), readOnlyNote("pipelines"), editing, section.el);
  section.refresh();
  return { refresh: section.refresh };
}
