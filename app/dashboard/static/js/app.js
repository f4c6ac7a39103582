// The dashboard's entry: every page is this shell; the path picks the page module, the query string holds
// the view's state (so a link shares the view), and the session decides what the signed-in key may do.

import { allows, loadSession, signOut } from "./api.js";
import { $, clear, h, toast } from "./dom.js";

const ROUTES = [
  [/^\/(runs)?$/, "runs", "/"],
  [/^\/runs\/([^/]+)$/, "run", "/"],
  [/^\/compare$/, "compare", "/"],
  [/^\/new$/, "newjob", "/new"],
  [/^\/datasets$/, "datasets", "/datasets"],
  [/^\/models$/, "models", "/models"],
  [/^\/models\/([^/]+)$/, "model", "/models"],
  [/^\/try$/, "tryit", "/try"],
  [/^\/signin$/, "signin", null],
];

let dispose = null;

function route() {
  for (const [re, name, nav] of ROUTES) {
    const m = location.pathname.match(re);
    if (m) return { name, nav, params: m.slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p))) };
  }
  return { name: "notfound", nav: null, params: [] };
}

function showWho(me) {
  const out = h("button", { type: "button", id: "signout" }, "Sign out");
  out.addEventListener("click", async () => {
    out.disabled = true;
    await signOut().catch(() => {});
    location.assign("/signin");
  });
  const scopes = (me.scopes || []).join(", ");
  clear($("#who"), h("span", null, "Signed in as "), h("span", { class: "name", title: me.name }, me.name),
    h("span", { class: "badge", title: "what this key may do" }, scopes), out);
}

function markNav(nav) {
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function render() {
  if (dispose) { dispose(); dispose = null; }
  const r = route();
  const main = $("#main");
  // the session and the page's module are fetched side by side: one round trip less before the page
  const [me, page] = await Promise.all([r.name === "signin" ? null : loadSession(),
    r.name === "notfound" ? null : import(`./pages/${r.name}.js`)]);
  if (r.name === "signin") {
    $("#nav").hidden = true;
  } else {
    if (!me) {
      location.replace(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
      return;
    }
    showWho(me);
    markNav(r.nav);
    if (!allows("read")) {
      // a predict-only key: the registry and try-it, nothing about runs or datasets
      for (const a of document.querySelectorAll("#nav a")) {
        if (["/", "/new", "/datasets"].includes(a.getAttribute("href"))) a.hidden = true;
      }
      if (!["models", "model", "tryit"].includes(r.name)) { location.replace("/try"); return; }
    }
  }
  if (!page) {
    clear(main, h("h1", null, "Not found"), h("p", null, h("a", { href: "/" }, "Back to the runs")));
    return;
  }
  main.replaceChildren();
  const ctx = { params: r.params, query: new URLSearchParams(location.search), allows, rerender: render };
  try {
    dispose = (await page.render(main, ctx)) || null;
  } catch (e) {
    main.append(h("p", { class: "alert", role: "alert" }, e.message || String(e)));
    toast(e.message || String(e), true);
  }
}

// Views that keep their state in the query string call this, then re-render themselves.
window.addEventListener("popstate", () => render());

render();
