// The console's start: signing in, and which view a location (#/…) shows.

import { ApiError, call, setSession } from "./api.js";
import { canSign } from "./sigv4.js";
import { errorBox, field, h, leave, render } from "./dom.js";
import { knowledgeBases, knowledgeBase } from "./knowledge-bases.js";
import { dataSource } from "./data-source.js";
import { documentView } from "./document.js";
import { testPane } from "./test-pane.js";

const STORED = "quarry-console-credentials";
let settings = { signed: true, region: "us-east-1" };

const routes = [
  [/^#?\/?$/, () => knowledgeBases()],
  [/^#\/kb\/([^/]+)$/, (kb) => knowledgeBase(kb)],
  [/^#\/kb\/([^/]+)\/test$/, (kb) => testPane(kb)],
  [/^#\/kb\/([^/]+)\/ds\/([^/]+)$/, (kb, ds) => dataSource(kb, ds)],
  [/^#\/kb\/([^/]+)\/ds\/([^/]+)\/doc\/(.+)$/, (kb, ds, key) => documentView(kb, ds, key)],
];

async function show() {
  leave();
  if (settings.signed && !sessionStorage.getItem(STORED)) {
    signIn();
    return;
  }
  const hash = location.hash;
  for (const [pattern, view] of routes) {
    const m = hash.match(pattern);
    if (m) {
      try {
        await view(...m.slice(1).map(decodeURIComponent));
      } catch (e) {
        if (e instanceof ApiError && e.status === 403 && settings.signed && /signature|unknown access key|signed at/i.test(e.message)) {
          signOut();
          return;
        }
        render("Something went wrong", errorBox(e));
      }
      return;
    }
  }
  render("Not found", h("p", {}, "No console page has this address. ", h("a", { href: "#/" }, "Knowledge bases")));
}

function useCredentials(credentials) {
  setSession({ signed: settings.signed, region: credentials.region, credentials });
  const who = document.getElementById("who");
  who.textContent = settings.signed ? `Signed in as ${credentials.accessKeyId}` : "Open mode (loopback, unsigned)";
  document.getElementById("sign-out").hidden = !settings.signed;
}

function signOut() {
  sessionStorage.removeItem(STORED);
  setSession(null);
  document.getElementById("who").textContent = "";
  document.getElementById("sign-out").hidden = true;
  signIn();
}

function signIn() {
  const message = h("div", { "aria-live": "assertive" });
  const keyId = h("input", { type: "text", name: "accessKeyId", autocomplete: "username", required: true, spellcheck: false });
  const secret = h("input", { type: "password", name: "secretAccessKey", autocomplete: "current-password", required: true });
  const region = h("input", { type: "text", name: "region", value: settings.region, required: true });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        message.replaceChildren();
        if (!canSign()) {
          message.append(errorBox("this page is not a secure context, so the browser gives it no WebCrypto to sign requests with: open the console over HTTPS ([server.tls]) or on localhost / 127.0.0.1"));
          return;
        }
        const credentials = { accessKeyId: keyId.value.trim(), secretAccessKey: secret.value, region: region.value.trim() };
        useCredentials(credentials);
        submit.disabled = true;
        try {
          await call("POST", "/knowledgebases/", { maxResults: 1 });
          sessionStorage.setItem(STORED, JSON.stringify(credentials));
          await show();
        } catch (e) {
          setSession(null);
          document.getElementById("who").textContent = "";
          document.getElementById("sign-out").hidden = true;
          const why = e instanceof ApiError && e.status === 403 ? "Sign-in failed: " : "Could not reach Quarry: ";
          message.append(errorBox(e, why));
          secret.focus();
        } finally {
          submit.disabled = false;
        }
      },
    },
    field("Access key id", keyId),
    field("Secret access key", secret, "Kept in this tab only (sessionStorage); requests are signed in the browser with SigV4."),
    field("Region", region),
    submit,
  );
  render("Sign in", h("p", {}, "Sign in with an access key from the server's [[server.access_keys]]. The console can do exactly what the key may."), form, message);
}

async function start() {
  document.getElementById("sign-out").addEventListener("click", signOut);
  try {
    const response = await fetch("settings.json", { cache: "no-store" });
    settings = await response.json();
  } catch (e) {
    render("Cannot reach Quarry", errorBox(e));
    return;
  }
  const stored = sessionStorage.getItem(STORED);
  if (!settings.signed) useCredentials({ accessKeyId: "", secretAccessKey: "", region: settings.region });
  else if (stored) useCredentials(JSON.parse(stored));
  window.addEventListener("hashchange", show);
  await show();
}

start();
