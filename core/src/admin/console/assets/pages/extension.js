// Extension detail: its facts, the config editor (a form generated from the JSON Schema; on a
// 422 each error is shown under the field its JSON pointer names), the config history (audit
// entries), the health history as an SVG chart, and its metrics per replica.

import {
  api, h, fill, live, table, badge, toast, errorBox, field, setFieldError, mayAdminister,
  readOnlyNote, compact, pretty, seg,
} from "../ui.js";

/** Pointer segment escaping (RFC 6901). */
const esc = (k) => String(k).replace(/~/g, "~0").replace(/\//g, "~1");

const NUMBER = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;

function setAt(target, path, value) {
  let obj = target;
  for (let i = 0; i < path.length - 1; i++) {
    if (typeof obj[path[i]] !== "object" || obj[path[i]] === null) obj[path[i]] = {};
    obj = obj[path[i]];
  }
  const last = path[path.length - 1];
  if (value === undefined) delete obj[last];
  else obj[last] = value;
}

/**
 * Builds the controls of `schema` at `path`; pushes each { pointer, path, control, get } to
 * `controls` and each object's error slot to `groups`.
 */
function build(schema, value, path, controls, groups, required = false) {
  const pointer = path.map((p) => `/${esc(p)}`).join("");
  const name = path.length ? path[path.length - 1] : "config";
  const title = schema.title || name;
  const hint = [schema.description, required ? "required" : null].filter(Boolean).join(" · ") || null;
  const id = `cfg${pointer.replace(/[^a-zA-Z0-9_-]/g, "_") || "_root"}`;
  if (schema.type === "object" && schema.properties) {
    const need = new Set(schema.required || []);
    const slot = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
    groups.push({ pointer, slot });
    const inner = Object.entries(schema.properties).map(([k, sub]) =>
      build(sub || {}, value && typeof value === "object" ? value[k] : undefined, [...path, k], controls, groups, need.has(k)),
    );
    if (!path.length) return h("div", { class: "config-form", id: "config-fields" }, slot, inner);
    return h("fieldset", { dataset: { pointer } }, h("legend", {}, title), hint ? h("p", { class: "hint muted" }, hint) : null, slot, inner);
  }
  let control;
  let get;
  if (Array.isArray(schema.enum)) {
    control = h(
      "select",
      { id, name: pointer },
      h("option", { value: "" }, "(not set)"),
      schema.enum.map((v) => h("option", { value: JSON.stringify(v), selected: JSON.stringify(v) === JSON.stringify(value) }, compact(v) || JSON.stringify(v))),
    );
    get = () => (control.value === "" ? undefined : JSON.parse(control.value));
  } else if (schema.type === "boolean") {
    control = h("input", { id, name: pointer, type: "checkbox", checked: value === true });
    // Unchecked stays unset when it was unset: the schema's default applies.
    get = () => (control.checked ? true : value === undefined ? undefined : false);
  } else if (schema.type === "integer" || schema.type === "number") {
    control = h("input", { id, name: pointer, inputmode: schema.type === "integer" ? "numeric" : "decimal", value: value === undefined ? "" : String(value) });
    // Not a number is sent as written: the server's schema check names the field.
    get = () => {
      const t = control.value.trim();
      if (t === "") return undefined;
      return NUMBER.test(t) ? Number(t) : t;
    };
  } else if (schema.type === "string") {
    control = h("input", { id, name: pointer, value: value === undefined ? "" : String(value) });
    get = () => (control.value === "" && value === undefined ? undefined : control.value);
  } else {
    control = h("textarea", { id, name: pointer, class: "code", rows: 4 }, value === undefined ? "" : pretty(value));
    get = () => {
      const t = control.value.trim();
      if (t === "") return undefined;
      try {
        return JSON.parse(t);
      } catch {
        throw Object.assign(new Error("not valid JSON"), { control });
      }
    };
  }
  control.dataset.pointer = pointer;
  controls.push({ pointer, path, control, get });
  const label = schema.type === "boolean" ? `${title}` : title;
  return field(label, control, [hint, schema.type ? `(${[].concat(schema.type).join(" | ")})` : null].filter(Boolean).join(" "));
}

function healthChart(history) {
  const points = [...history].reverse();
  const W = 600;
  const H = 140;
  const max = Math.max(1, ...points.map((p) => p.duration_ms || 0));
  const bw = points.length ? W / points.length : W;
  const svg = h(
    "svg:svg",
    { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": `health checks: ${points.length}, newest on the right` },
    h("svg:line", { class: "axis", x1: 0, y1: H - 14, x2: W, y2: H - 14 }),
    points.map((p, i) => {
      const bh = Math.max(6, ((p.duration_ms || 0) / max) * (H - 30));
      return h(
        "svg:rect",
        { class: `s-${p.status}`, x: i * bw + 1, y: H - 14 - bh, width: Math.max(1, bw - 2), height: bh },
        h("svg:title", {}, `${p.at} ${p.status} ${Number(p.duration_ms).toFixed(1)} ms${p.message ? ` — ${p.message}` : ""}`),
      );
    }),
  );
  return h(
    "div",
    { id: "health-chart" },
    svg,
    h("p", { class: "legend" }, `Bar height: check duration (max ${max.toFixed(1)} ms); colour: healthy / degraded / down. ${points.length} checks, newest right.`),
  );
}

/** A metric's samples: `[{label…, value}]` or `[{label…, count, sum}]`, one line each. */
function series(v) {
  if (!Array.isArray(v)) return compact(v) || String(v);
  return h(
    "ul",
    { class: "plain" },
    v.map((sample) => {
      const labels = Object.entries(sample)
        .filter(([k]) => !["value", "count", "sum"].includes(k))
        .map(([k, x]) => `${k}=${x}`)
        .join(" ");
      const figure = "value" in sample ? String(sample.value) : `${sample.count} × (sum ${Number(sample.sum).toFixed(3)} s)`;
      return h("li", {}, labels ? h("span", { class: "muted" }, `${labels}: `) : null, h("strong", {}, figure));
    }),
  );
}

export async function mount(root, [name]) {
  const admin = mayAdminister();
  const base = `/api/v1/extensions/${seg(name)}`;
  root.append(h("p", {}, h("a", { href: "#/" }, "← All extensions")));
  const head = live(
    () => api("GET", base),
    (d) => {
      const s = d.summary || d;
      return [
        h("div", { class: "spread" }, h("h1", { id: "ext-title" }, s.name), h("span", {}, badge(s.state), " ", badge(s.health))),
        h("p", { class: "muted break" }, s.description),
        h(
          "dl",
          { class: "kv" },
          h("dt", {}, "Version"), h("dd", {}, h("code", {}, s.version)),
          h("dt", {}, "Depends on"), h("dd", {}, d.dependencies.length ? d.dependencies.map((x) => compact(x.name || x)).join(", ") : "—"),
          h("dt", {}, "Needed by"), h("dd", {}, d.dependents.length ? d.dependents.join(", ") : "—"),
          h("dt", {}, "Routes"), h("dd", {}, d.routes.length ? d.routes.map((r) => h("div", {}, h("code", {}, `${r.method} ${r.path}`))) : "—"),
          h("dt", {}, "Site-scoped"), h("dd", {}, d.sites && d.sites.site_scoped ? "yes" : "no"),
          h("dt", {}, "Migrations"), h("dd", {}, String(d.migrations.length)),
        ),
      ];
    },
    { class: "card" },
  );

  // The config editor.
  const general = h("div", { id: "config-errors" });
  const editorBody = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const editor = h("section", { class: "card", id: "config-card" }, h("h2", {}, "Config"), general, editorBody);
  let dirty = false;
  let shownConfig = null;
  async function drawEditor() {
    const view = await api("GET", `${base}/config`);
    shownConfig = JSON.stringify(view.config);
    dirty = false;
    const controls = [];
    const groups = [];
    const schema = view.schema;
    const useForm = schema && schema.type === "object" && schema.properties;
    const form = useForm ? build(schema, view.config, [], controls, groups) : null;
    const raw = h("textarea", { id: "config-json", class: "code", rows: 10, "aria-label": "config as JSON" }, pretty(view.config));
    const save = h("button", { type: "submit", class: "primary", id: "config-save", disabled: !admin }, "Save config");
    const saveRaw = h("button", { type: "button", id: "config-save-json", disabled: !admin }, "Save JSON");
    function clearErrors() {
      general.replaceChildren();
      for (const c of controls) setFieldError(c.control, null);
      for (const g of groups) {
        g.slot.hidden = true;
        g.slot.textContent = "";
      }
      setFieldError(raw, null);
    }
    function showErrors(errors, fromJson) {
      const unplaced = [];
      for (const err of errors) {
        const c = !fromJson && controls.find((x) => x.pointer === err.pointer);
        const g = !fromJson && groups.find((x) => x.pointer === err.pointer && x.pointer !== "");
        if (c) setFieldError(c.control, err.message);
        else if (g) {
          g.slot.hidden = false;
          g.slot.textContent = err.message;
        } else unplaced.push(err);
      }
      if (unplaced.length) {
        fill(
          general,
          h("div", { class: "error-box", role: "alert" }, h("strong", {}, "The config does not match the schema:"),
            h("ul", { class: "errors" }, unplaced.map((e) => h("li", {}, h("code", {}, e.pointer || "(whole config)"), " ", e.message)))),
        );
      }
    }
    async function put(config, fromJson) {
      clearErrors();
      try {
        await api("PUT", `${base}/config`, config);
        toast("Config saved and applied");
        await drawEditor();
        fill(general, h("div", { class: "ok-box", id: "config-saved", role: "status" }, "Saved: the new config is live."));
        history.refresh(true);
      } catch (e) {
        if (e.status === 422 && e.body && e.body.error && Array.isArray(e.body.error.errors)) {
          showErrors(e.body.error.errors, fromJson);
          if (fromJson) setFieldError(raw, "see the errors above");
        } else {
          fill(general, errorBox(e));
        }
      }
    }
    function collect() {
      const config = JSON.parse(shownConfig);
      const target = config && typeof config === "object" ? config : {};
      for (const c of controls) setAt(target, c.path, c.get());
      return target;
    }
    const formEl = h(
      "form",
      {
        id: "config-form",
        novalidate: true,
        oninput: () => (dirty = true),
        onsubmit: (ev) => {
          ev.preventDefault();
          try {
            put(collect(), false);
          } catch (e) {
            clearErrors();
            if (e.control) setFieldError(e.control, e.message);
          }
        },
      },
      form,
      useForm ? h("div", { class: "actions" }, save) : null,
    );
    fill(
      editorBody,
      schema ? null : h("p", { class: "muted" }, "This extension declares no schema: any JSON object is accepted."),
      useForm ? formEl : null,
      h(
        useForm ? "details" : "div",
        { class: "raw-json" },
        useForm ? h("summary", {}, "Edit as JSON") : null,
        field("Config (JSON)", raw),
        h("div", { class: "actions" }, saveRaw),
      ),
      schema ? h("details", {}, h("summary", {}, "JSON Schema"), h("pre", {}, pretty(schema))) : null,
    );
    raw.addEventListener("input", () => (dirty = true));
    saveRaw.addEventListener("click", () => {
      let parsed;
      try {
        parsed = JSON.parse(raw.value);
      } catch (e) {
        clearErrors();
        setFieldError(raw, `not valid JSON: ${e.message}`);
        return;
      }
      put(parsed, true);
    });
  }

  const history = live(
    () => api("GET", `/api/v1/audit?target=${seg(name)}&action=${seg("extension.config*")}&limit=20`),
    (a) =>
      a.entries.length
        ? table(["When", "Who", "What", "Details"], a.entries.map((e) => [e.at, e.actor, e.action, h("code", {}, compact(e.details))]), { id: "config-history" })
        : h("p", { class: "muted" }, "No config changes recorded."),
  );
  const health = live(
    () => api("GET", `${base}/health?limit=60`),
    (r) => [
      h("p", {}, "Now: ", badge(r.status), r.history[0] && r.history[0].message ? h("span", { class: "muted" }, ` ${r.history[0].message}`) : null),
      r.history.length ? healthChart(r.history) : h("p", { class: "muted" }, "No health checks yet."),
    ],
  );
  const metrics = live(
    () => api("GET", `${base}/metrics`),
    (m) =>
      m.replicas.length
        ? m.replicas.map((r) =>
            h("div", {}, h("h3", {}, `Replica ${r.replica}`), h("p", { class: "muted" }, `as of ${r.at}`),
              h("dl", { class: "kv metrics" }, Object.entries(r.figures || {}).map(([k, v]) => [h("dt", {}, k), h("dd", {}, series(v))]))),
          )
        : h("p", { class: "muted" }, "No figures reported yet."),
  );
  root.append(
    head.el,
    readOnlyNote("this extension"),
    editor,
    h(
      "div",
      { class: "grid" },
      h("section", { class: "card" }, h("h2", {}, "Health history"), health.el),
      h("section", { class: "card" }, h("h2", {}, "Metrics"), metrics.el),
    ),
    h("section", { class: "card" }, h("h2", {}, "Config history"), history.el),
  );
  head.refresh();
  history.refresh();
  health.refresh();
  metrics.refresh();
  try {
    await drawEditor();
  } catch (e) {
    fill(editorBody, errorBox(e));
  }
  return {
    refresh: async () => {
      head.refresh();
      history.refresh();
      health.refresh();
      metrics.refresh();
      // A config changed elsewhere replaces the form, unless the user is editing it.
      if (!dirty) {
        try {
          const view = await api("GET", `${base}/config`);
          if (JSON.stringify(view.config) !== shownConfig && !dirty) await drawEditor();
        } catch {
          /* the head section shows errors */
        }
      }
    },
  };
}
