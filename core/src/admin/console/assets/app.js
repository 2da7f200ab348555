// The console's shell: login, the session, the navigation, the hash router (#/…), and polling
// of the current page. Each page is an ES module under pages/ exporting
// `mount(root, params) -> { refresh }`; app.js calls refresh every POLL_MS while it is shown.

import { api, h, fill, session, errorBox, field, toast, POLL_MS } from "./ui.js";

const PAGES = [
  { pattern: /^\/$/, module: "./pages/overview.js", nav: "overview" },
  { pattern: /^\/extensions\/([^/]+)$/, module: "./pages/extension.js", nav: "overview" },
  { pattern: /^\/audit$/, module: "./pages/audit.js", nav: "audit" },
  { pattern: /^\/sites$/, module: "./pages/sites.js", nav: "sites" },
  { pattern: /^\/sites\/([^/]+)$/, module: "./pages/sites.js", nav: "sites" },
  { pattern: /^\/pipelines$/, module: "./pages/pipelines.js", nav: "pipelines" },
  { pattern: /^\/entities$/, module: "./pages/entities.js", nav: "entities" },
];

const NAV = [
  ["overview", "#/", "Extensions"],
  ["audit", "#/audit", "Audit log"],
  ["sites", "#/sites", "Sites"],
  ["pipelines", "#/pipelines", "Pipelines"],
  ["entities", "#/entities", "Entities"],
];

let timer = null;
let generation = 0;

function main() {
  return document.getElementById("main");
}

/** The hash as a path and its query: "#/audit?actor=x" → ["/audit", URLSearchParams]. */
export function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  return [path || "/", new URLSearchParams(query || "")];
}

function drawShell() {
  const who = document.getElementById("who");
  const s = session.current;
  const name = s.kind === "operator" ? s.username : "admin token";
  fill(
    who,
    h("span", { class: "who-name", title: s.actor }, name),
    h("span", { class: "who-roles" }, s.roles.join(", ")),
    h("button", { type: "button", id: "logout", onclick: logout }, "Log out"),
  );
  const [path] = route();
  const current = (PAGES.find((p) => p.pattern.test(path)) || PAGES[0]).nav;
  fill(
    document.getElementById("nav"),
    h(
      "ul",
      {},
      NAV.map(([key, href, text]) =>
        h("li", {}, h("a", { href, "aria-current": key === current ? "page" : null }, text)),
      ),
    ),
  );
}

async function show() {
  const gen = ++generation;
  clearInterval(timer);
  const [path, params] = route();
  const page = PAGES.find((p) => p.pattern.test(path));
  drawShell();
  const root = main();
  if (!page) {
    fill(root, errorBox(new Error(`no page at ${path}`)));
    return;
  }
  const match = path.match(page.pattern).slice(1).map(decodeURIComponent);
  try {
    const mod = await import(page.module);
    if (gen !== generation) return;
    root.replaceChildren();
    const mounted = (await mod.mount(root, match, params)) || {};
    if (gen !== generation) return;
    if (mounted.refresh) {
      timer = setInterval(() => {
        if (document.visibilityState === "visible") mounted.refresh();
      }, POLL_MS);
    }
  } catch (e) {
    fill(root, errorBox(e));
  }
}

async function logout() {
  try {
    await api("DELETE", "/admin/api/session");
  } catch (e) {
    toast(e.message, "error");
  }
  session.current = null;
  location.assign("/admin/login");
}

function loginPage() {
  document.getElementById("nav").replaceChildren();
  document.getElementById("who").replaceChildren();
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password" });
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "off" });
  const message = h("div", { id: "login-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary", id: "login-submit" }, "Log in");
  async function send(ev, body) {
    ev.preventDefault();
    message.replaceChildren();
    submit.disabled = true;
    try {
      session.current = await api("POST", "/admin/api/session", body);
      location.assign("/admin/#/");
    } catch (e) {
      fill(message, errorBox(e));
    } finally {
      submit.disabled = false;
    }
  }
  const form = h(
    "form",
    { class: "login card", id: "login-form", onsubmit: (ev) => send(ev, { username: user.value.trim(), password: pass.value }) },
    h("h1", {}, "annex console"),
    field("Username", user),
    field("Password", pass),
    submit,
    message,
  );
  const tokenForm = h(
    "details",
    { class: "card token-login" },
    h("summary", {}, "Log in with a token instead"),
    h(
      "form",
      { id: "token-form", onsubmit: (ev) => send(ev, { token: token.value.trim() }) },
      field("Admin token or personal token", token, "The admin token (server.admin_token) or an operator's annex_op_… token."),
      h("button", { type: "submit" }, "Log in with token"),
    ),
  );
  fill(main(), h("div", { class: "login-wrap" }, form, tokenForm));
  user.focus();
}

async function start() {
  const onLogin = location.pathname.endsWith("/login");
  try {
    session.current = await api("GET", "/admin/api/session");
  } catch {
    session.current = null;
  }
  if (!session.current) {
    if (!onLogin) {
      location.assign("/admin/login");
      return;
    }
    loginPage();
    return;
  }
  if (onLogin) {
    location.assign("/admin/#/");
    return;
  }
  window.addEventListener("hashchange", show);
  show();
}

start();
