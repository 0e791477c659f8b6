// The test pane: a query with search type, number of results, a filter built from Bedrock's
// operators and reranking; Retrieve's passages with scores and metadata; RetrieveAndGenerate
// streamed as it is written, each citation marked in the answer and linked to its passage;
// the conversation continued by its session; and the request as boto3 code.

import { call, currentSession, path, send } from "./api.js";
import { readEvents } from "./eventstream.js";
import { errorBox, field, h, link, live, render, select } from "./dom.js";
import { modelArn } from "./knowledge-bases.js";

const OPERATORS = ["equals", "notEquals", "greaterThan", "greaterThanOrEquals", "lessThan", "lessThanOrEquals", "in", "notIn", "startsWith", "listContains", "stringContains"];
const SOURCE_URI = "x-amz-bedrock-kb-source-uri";
const PAGE = "x-amz-bedrock-kb-document-page-number";

// A value as typed: JSON when it reads as JSON (numbers, booleans, lists), else the string.
function typedValue(text) {
  const t = text.trim();
  if (/^(-?\d+(\.\d+)?|true|false|\[.*\])$/s.test(t)) {
    try {
      return JSON.parse(t);
    } catch {
      // fall through: a string
    }
  }
  return text;
}

function filterBuilder() {
  const rows = h("div", {});
  const combine = select("combine", [["andAll", "all of"], ["orAll", "any of"]], "andAll");
  let n = 0;
  const addRow = () => {
    const i = ++n;
    const key = h("input", { type: "text", name: `filter-key-${i}`, class: "filter-key", spellcheck: false });
    const op = select(`filter-op-${i}`, OPERATORS.map((o) => [o, o]), "equals");
    op.classList.add("filter-op");
    const value = h("input", { type: "text", name: `filter-value-${i}`, class: "filter-value", spellcheck: false });
    const row = h(
      "div",
      { class: "row filter-row" },
      h("div", {}, field(`Attribute ${i}`, key)),
      h("div", {}, field(`Operator ${i}`, op)),
      h("div", {}, field(`Value ${i}`, value, "text, a number, true/false, or a JSON list")),
      h("button", { type: "button", class: "secondary", "aria-label": `Remove condition ${i}`, onclick: () => row.remove() }, "Remove"),
    );
    rows.append(row);
    key.focus();
  };
  const element = h(
    "fieldset",
    {},
    h("legend", {}, "Metadata filter"),
    h("div", { class: "row" }, field("Match", combine)),
    rows,
    h("button", { type: "button", class: "secondary", onclick: addRow }, "Add condition"),
  );
  const value = () => {
    const conditions = [...rows.querySelectorAll(".filter-row")]
      .map((r) => [r.querySelector(".filter-key").value.trim(), r.querySelector(".filter-op").value, r.querySelector(".filter-value").value])
      .filter(([k]) => k)
      .map(([key, op, v]) => ({ [op]: { key, value: typedValue(v) } }));
    if (!conditions.length) return undefined;
    return conditions.length === 1 ? conditions[0] : { [combine.value]: conditions };
  };
  return { element, value };
}

// JSON as a Python literal, for the boto3 snippet.
function py(value, indent = "") {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") return String(value);
  const inner = indent + "    ";
  if (Array.isArray(value)) return value.length ? `[\n${value.map((v) => inner + py(v, inner)).join(",\n")},\n${indent}]` : "[]";
  const entries = Object.entries(value);
  return entries.length ? `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${py(v, inner)}`).join(",\n")},\n${indent}}` : "{}";
}

function boto3Code(operation, args) {
  const s = currentSession();
  const lines = [
    "import boto3",
    "",
    `client = boto3.client("bedrock-agent-runtime", endpoint_url=${JSON.stringify(location.origin)}, region_name=${JSON.stringify(s.region)})`,
    `response = client.${operation}(`,
    ...Object.entries(args).map(([k, v]) => `    ${k}=${py(v, "    ")},`),
    ")",
  ];
  if (operation === "retrieve_and_generate_stream") {
    lines.push("for event in response[\"stream\"]:", "    print(event)");
  }
  return lines.join("\n");
}

function sourceOf(metadata = {}, location = {}) {
  return metadata[SOURCE_URI] || (location.s3Location || {}).uri || (location.customDocumentLocation || {}).id || "";
}

function passage(result, i, prefix) {
  const metadata = result.metadata || {};
  const page = metadata[PAGE];
  return h(
    "section",
    { class: "result", id: `${prefix}-${i + 1}`, tabindex: "-1", "aria-labelledby": `${prefix}-${i + 1}-title` },
    h(
      "h3",
      { id: `${prefix}-${i + 1}-title` },
      `[${i + 1}] `,
      sourceOf(metadata, result.location),
      page !== undefined ? ` · page ${page}` : "",
      result.score !== undefined ? h("span", { class: "meta" }, ` · score ${result.score.toFixed(4)}`) : "",
    ),
    h("div", { class: "text" }, result.content.text),
    h(
      "details",
      {},
      h("summary", {}, "Metadata"),
      h("dl", {}, Object.entries(metadata).map(([k, v]) => [h("dt", {}, k), h("dd", {}, JSON.stringify(v))])),
    ),
  );
}

// The answer with each cited span marked and linked to the source passage it cites. Spans
// count characters (code points), end exclusive.
function citedAnswer(text, citations, sourceIndex) {
  const chars = Array.from(text);
  const piece = (a, b) => chars.slice(a, b).join("");
  const marks = citations
    .map((c) => ({ span: c.generatedResponsePart.textResponsePart.span, refs: (c.retrievedReferences || []).map(sourceIndex) }))
    .filter((m) => m.span && m.refs.length)
    .sort((a, b) => a.span.start - b.span.start);
  const out = [];
  let at = 0;
  for (const { span, refs } of marks) {
    if (span.start < at) continue;
    const end = Math.min(chars.length, span.end);
    out.push(piece(at, span.start));
    out.push(
      h(
        "mark",
        { class: "citation" },
        h("a", { href: `#source-${refs[0]}`, "data-target": `source-${refs[0]}`, onclick: jump }, piece(span.start, end)),
        refs.map((r) => h("a", { class: "citation-ref", href: `#source-${r}`, "data-target": `source-${r}`, onclick: jump, "aria-label": `source ${r}` }, `[${r}]`)),
      ),
    );
    at = end;
  }
  out.push(piece(at, chars.length));
  return out;
}

// In-page links move focus to the passage without changing the console's location.
function jump(event) {
  event.preventDefault();
  const target = document.getElementById(event.currentTarget.dataset.target);
  if (!target) return;
  document.querySelectorAll(".result.linked").forEach((e) => e.classList.remove("linked"));
  target.classList.add("linked");
  target.scrollIntoView({ block: "center" });
  target.focus();
}

export async function testPane(kbId) {
  const [{ knowledgeBase: kb }, models] = await Promise.all([call("GET", path`/knowledgebases/${kbId}`), call("GET", "/quarry/models")]);
  const query = h("textarea", { name: "query", required: true, rows: 3 });
  const searchType = select("searchType", [["", "Default"], ["HYBRID", "Hybrid"], ["SEMANTIC", "Semantic"]], "");
  const count = h("input", { type: "number", name: "numberOfResults", value: "5", min: "1", max: "100" });
  const filter = filterBuilder();
  const reranker = select("reranker", [["", "No reranking"], ...models.rerankingModels.map((m) => [m, m])], "");
  const reranked = h("input", { type: "number", name: "numberOfRerankedResults", value: "5", min: "1", max: "1000" });
  const generator = select("generationModel", models.generationModels.map((m) => [m, m]), models.generationModels[0]);
  const out = live();
  const code = h("pre", { id: "boto3-code" });
  const copy = h("button", { type: "button", class: "secondary", onclick: () => navigator.clipboard && navigator.clipboard.writeText(code.textContent) }, "Copy boto3 code");
  const sessionText = h("span", { id: "session" }, "new conversation");
  let sessionId = null;
  const newSession = h("button", { type: "button", class: "secondary", onclick: () => { sessionId = null; sessionText.textContent = "new conversation"; } }, "New conversation");

  function retrievalConfiguration() {
    const vector = { numberOfResults: Number(count.value) };
    if (searchType.value) vector.overrideSearchType = searchType.value;
    const f = filter.value();
    if (f) vector.filter = f;
    if (reranker.value) {
      vector.rerankingConfiguration = {
        type: "BEDROCK_RERANKING_MODEL",
        bedrockRerankingConfiguration: { numberOfRerankedResults: Number(reranked.value), modelConfiguration: { modelArn: modelArn(reranker.value) } },
      };
    }
    return { vectorSearchConfiguration: vector };
  }

  async function retrieve() {
    const args = { knowledgeBaseId: kb.knowledgeBaseId, retrievalQuery: { text: query.value }, retrievalConfiguration: retrievalConfiguration() };
    code.textContent = boto3Code("retrieve", args);
    out.replaceChildren(h("p", { class: "muted" }, "Searching…"));
    try {
      const response = await call("POST", path`/knowledgebases/${kb.knowledgeBaseId}/retrieve`, { retrievalQuery: args.retrievalQuery, retrievalConfiguration: args.retrievalConfiguration });
      const results = response.retrievalResults || [];
      out.replaceChildren(h("h2", { id: "results-title" }, `${results.length} passages`), ...results.map((r, i) => passage(r, i, "passage")));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  }

  async function generate() {
    const args = {
      input: { text: query.value },
      retrieveAndGenerateConfiguration: {
        type: "KNOWLEDGE_BASE",
        knowledgeBaseConfiguration: { knowledgeBaseId: kb.knowledgeBaseId, modelArn: modelArn(generator.value), retrievalConfiguration: retrievalConfiguration() },
      },
    };
    if (sessionId) args.sessionId = sessionId;
    code.textContent = boto3Code("retrieve_and_generate_stream", args);
    const answer = h("div", { class: "answer", id: "answer", "aria-busy": "true" });
    const sources = h("div", { id: "sources" });
    const status = h("p", { class: "meta", role: "status" }, "Writing…");
    out.replaceChildren(h("h2", {}, "Answer"), answer, status, sources);
    let text = "";
    const citations = [];
    try {
      const response = await send("POST", "/retrieveAndGenerateStream", args);
      sessionId = response.headers.get("x-amzn-bedrock-knowledge-base-session-id") || sessionId;
      sessionText.textContent = sessionId ? `session ${sessionId}` : "new conversation";
      await readEvents(response.body, (headers, payload) => {
        if (headers[":message-type"] === "exception") throw Object.assign(new Error(payload.message), { name: headers[":exception-type"] });
        if (headers[":event-type"] === "output") {
          text += payload.text;
          answer.textContent = text;
        } else if (headers[":event-type"] === "citation") {
          citations.push(payload.citation || payload);
        }
      });
    } catch (e) {
      status.replaceWith(errorBox(e));
      answer.setAttribute("aria-busy", "false");
      return;
    }
    // Each distinct passage cited, numbered in order of first citation.
    const seen = new Map();
    const references = [];
    const sourceIndex = (ref) => {
      const k = `${sourceOf(ref.metadata, ref.location)}\u0000${ref.content.text}`;
      if (!seen.has(k)) {
        references.push(ref);
        seen.set(k, references.length);
      }
      return seen.get(k);
    };
    answer.replaceChildren(...citedAnswer(text, citations, sourceIndex));
    answer.dataset.text = text;
    answer.setAttribute("aria-busy", "false");
    status.textContent = `${citations.length} citations`;
    sources.replaceChildren(h("h2", {}, "Cited passages"), ...references.map((r, i) => passage(r, i, "source")));
  }

  const form = h(
    "form",
    { onsubmit: (event) => { event.preventDefault(); retrieve(); } },
    field("Query", query),
    h("div", { class: "row" }, h("div", {}, field("Search type", searchType)), h("div", {}, field("Number of results", count))),
    filter.element,
    h("div", { class: "row" }, h("div", {}, field("Reranking", reranker)), h("div", {}, field("Reranked results", reranked))),
    h("div", { class: "row" }, h("div", {}, field("Generation model", generator))),
    h("button", { type: "submit", id: "retrieve" }, "Retrieve"),
    h("button", { type: "button", id: "generate", disabled: !models.generationModels.length, onclick: () => query.reportValidity() && generate() }, "Retrieve and generate"),
    newSession,
    h("p", { class: "meta" }, "Conversation: ", sessionText),
  );
  render(
    `Test ${kb.name}`,
    h("p", { class: "tabs" }, link(`#/kb/${encodeURIComponent(kbId)}`, "← Knowledge base")),
    form,
    out,
    h("h2", {}, "This request in boto3"),
    code,
    copy,
  );
}
