// Small DOM helpers: elements from tags and attributes, the page's one view, errors.

// h("a", { href: "#/", onclick: f }, "text", child, …). Strings become text nodes (never HTML).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "for") el.htmlFor = v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

let seq = 0;
// A labelled control: returns [label, control] with the label pointing at the control.
export function field(text, control, hint) {
  const id = control.id || `f${++seq}`;
  control.id = id;
  const label = h("label", { for: id }, text);
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    return [label, control, h("div", { id: hintId, class: "meta" }, hint)];
  }
  return [label, control];
}

export function select(name, options, value) {
  return h("select", { name }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
}

// Shows a view in <main>, titled, with focus moved to its heading for screen readers.
export function render(title, ...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(h("h1", { tabindex: "-1" }, title));
  append(main, nodes);
  document.title = `${title} · Quarry console`;
  main.querySelector("h1").focus();
}

export function errorBox(e, prefix = "") {
  const name = e && e.name && e.name !== "Error" ? `${e.name}: ` : "";
  return h("p", { class: "error", role: "alert" }, prefix, name, e && e.message ? e.message : String(e));
}

// A region whose content is replaced as work proceeds (announced politely).
export function live(...children) {
  return h("div", { "aria-live": "polite" }, ...children);
}

export function table(headers, rows, caption) {
  return h(
    "table",
    {},
    caption ? h("caption", { class: "muted" }, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
  );
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

export function link(href, text) {
  return h("a", { href }, text);
}

let stopView = () => {};
// A view registers the work to stop when the location changes (polling a job).
export function onLeave(f) {
  stopView = f;
}
export function leave() {
  stopView();
  stopView = () => {};
}
