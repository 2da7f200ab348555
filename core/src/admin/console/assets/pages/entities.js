// Entity browser: each extension's declared entities and fields; the records of one entity
// (filter, page), one record, and create/edit through the entity API (422 errors are shown at
// their field). Records go through /admin/api/entities/<extension>/…, which runs the entity
// API as the logged-in actor (their roles; the entity's access rules decide).

import { api, h, fill, live, table, toast, errorBox, field, setFieldError, compact, pretty, seg } from "../ui.js";

async function declarations() {
  const list = await api("GET", "/api/v1/extensions");
  const views = await Promise.all(
    list.extensions.map((e) => api("GET", `/api/v1/extensions/${seg(e.name)}/entities`).catch(() => null)),
  );
  const out = [];
  for (const v of views) {
    if (!v || !v.declared) continue;
    for (const [name, entity] of Object.entries(v.declared.entities || {})) out.push({ extension: v.extension, name, entity });
  }
  return out;
}

function recordForm(ext, name, entity, record, done) {
  const inputs = {};
  const fields = Object.entries(entity.fields).map(([f, def]) => {
    const type = typeof def.type === "string" ? def.type : compact(def.type);
    const value = record ? record[f] : undefined;
    const input = h("input", { id: `rec-${f}`, name: f, value: value === undefined || value === null ? "" : typeof value === "string" ? value : JSON.stringify(value) });
    inputs[f] = { input, type };
    return field(`${f}${def.required ? " *" : ""}`, input, type);
  });
  const out = h("div", { id: "record-errors" });
  function value(type, text) {
    if (text === "") return undefined;
    if (/^(integer|int|bigint|number|decimal|float|boolean|bool|json)/.test(type)) {
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    }
    return text;
  }
  return h(
    "form",
    {
      id: "record-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        out.replaceChildren();
        const body = {};
        for (const [f, { input, type }] of Object.entries(inputs)) {
          setFieldError(input, null);
          const v = value(type, input.value);
          if (v !== undefined) body[f] = v;
          else if (record && record[f] !== undefined && record[f] !== null) body[f] = null;
        }
        const path = `/admin/api/entities/${seg(ext)}/${seg(name)}${record ? `/${seg(record.id)}` : ""}`;
        try {
          await api(record ? "PATCH" : "POST", path, body);
          toast(record ? "Record saved" : "Record created");
          done();
        } catch (e) {
          const fieldErrors = e.body && e.body.error && e.body.error.fields;
          if (e.status === 422 && fieldErrors) {
            const rest = [];
            for (const fe of [].concat(fieldErrors)) {
              const key = fe.field || (fe.pointer || "").replace(/^\//, "");
              if (inputs[key]) setFieldError(inputs[key].input, fe.message);
              else rest.push(fe);
            }
            if (typeof fieldErrors === "object" && !Array.isArray(fieldErrors)) {
              for (const [k, m] of Object.entries(fieldErrors)) if (inputs[k]) setFieldError(inputs[k].input, compact(m));
            }
            if (rest.length) fill(out, errorBox(e));
          } else {
            fill(out, errorBox(e));
          }
        }
      },
    },
    fields,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, record ? "Save record" : "Create record")),
    out,
  );
}

export async function mount(root, _m, params) {
  const chosen = params.get("entity"); // "<extension>.<entity>"
  const filter = params.get("filter") || "";
  const decls = live(declarations, (list) =>
    list.length
      ? table(
          ["Entity", "Extension", "Fields", "Site-scoped"],
          list.map((d) => [
            h("a", { href: `#/entities?entity=${seg(`${d.extension}.${d.name}`)}` }, h("strong", {}, d.name)),
            d.extension,
            Object.keys(d.entity.fields).join(", "),
            d.entity.site_scoped ? "yes" : "no",
          ]),
          { id: "entity-list" },
        )
      : h("p", { class: "muted" }, "No extension declares entities."),
  );
  root.append(h("h1", {}, "Entities"), h("section", { class: "card" }, decls.el));
  decls.refresh();
  if (!chosen) return { refresh: decls.refresh };
  const [ext, name] = chosen.split(".");
  const detail = h("div", {});
  const filterInput = h("input", { id: "record-filter", value: filter, placeholder: "status = 'open'" });
  let entity = null;
  try {
    const found = (await declarations()).find((d) => d.extension === ext && d.name === name);
    entity = found ? found.entity : null;
  } catch {
    entity = null;
  }
  // The columns: the entity's own fields (not the one-to-many lists), at most six.
  const columns = entity
    ? Object.entries(entity.fields).filter(([, f]) => !(f.type === "relation" && f.kind === "one-to-many")).map(([k]) => k).slice(0, 6)
    : [];
  const records = live(
    () => api("GET", `/admin/api/entities/${seg(ext)}/${seg(name)}?per_page=50${filter ? `&filter=${seg(filter)}` : ""}`),
    (page) => {
      const rows = page.items || page.data || page.records || [];
      return rows.length
        ? table(
            ["id", ...columns, ""],
            rows.map((r) => [
              h("code", { title: String(r.id) }, String(r.id).slice(0, 8)),
              ...columns.map((k) => compact(r[k])),
              h("button", { type: "button", onclick: () => view(r) }, "View / edit"),
            ]),
            { id: "records" },
          )
        : h("p", { class: "muted" }, "No records.");
    },
  );
  async function view(record) {
    if (!entity) {
      const list = await declarations();
      const found = list.find((d) => d.extension === ext && d.name === name);
      entity = found && found.entity;
    }
    if (!entity) return;
    fill(detail, h("section", { class: "card" }, h("h2", {}, record ? `${name} ${record.id}` : `New ${name}`),
      record ? h("pre", {}, pretty(record)) : null,
      recordForm(ext, name, entity, record, () => {
        detail.replaceChildren();
        records.refresh(true);
      })));
  }
  root.append(
    h("section", { class: "card" },
      h("div", { class: "spread" }, h("h2", {}, `${name} (${ext})`), h("button", { type: "button", id: "record-new", onclick: () => view(null) }, "New record")),
      h("form", { class: "row", onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/entities?entity=${seg(chosen)}&filter=${seg(filterInput.value)}`; } },
        field("Filter", filterInput, "the entity API's filter syntax"), h("button", { type: "submit" }, "Filter")),
      records.el),
    detail,
  );
  records.refresh();
  return { refresh: () => { decls.refresh(); records.refresh(); } };
}
