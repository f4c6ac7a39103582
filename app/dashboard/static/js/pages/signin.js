// Sign in with an API key. The key goes once, in a POST body, to /v1/session; what comes back is an
// HttpOnly cookie. The key is never put in the URL, the history, a log or any browser storage, and the
// field is cleared as soon as it has been sent.

import { ApiError, signIn } from "../api.js";
import { field, h } from "../dom.js";
import { safeNext } from "../nav.js";

export async function render(root, { query }) {
  const next = safeNext(query.get("next"));
  document.title = "Sign in · dlserve";
  const key = h("input", { type: "password", name: "key", autocomplete: "off", required: true, spellcheck: "false",
    placeholder: "dls_…" });
  const keyField = field("API key", key, ["A key from ", h("code", null, "dlserve keys create"), ", or the admin key ",
    h("code", null, "make run"), " printed."]);
  const go = h("button", { class: "primary", type: "submit" }, "Sign in");
  const form = h("form", { method: "post", action: "/signin", "aria-label": "Sign in", novalidate: true },
    keyField, h("div", { class: "row end" }, go));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = key.value.trim();
    key.value = "";
    if (!value) { keyField.setError("Paste an API key."); key.focus(); return; }
    go.disabled = true;
    keyField.setError("");
    try {
      await signIn(value);
      location.assign(next);
    } catch (err) {
      keyField.setError(err instanceof ApiError ? err.message : "Could not reach the server.");
      go.disabled = false;
      key.focus();
    }
  });
  root.append(h("div", { class: "signin" },
    h("div", { class: "panel stack" }, h("h1", null, "Sign in to dlserve"),
      h("p", { class: "muted small" }, "Your key is exchanged for a browser session; it is not stored in the page."),
      form)));
  key.focus();
}
