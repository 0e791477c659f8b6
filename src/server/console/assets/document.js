// One document: its chunks in order with pages, spans, token counts and metadata, and the
// text its parser extracts.

import { call, path } from "./api.js";
import { h, link, render } from "./dom.js";

export async function documentView(kbId, dsId, key) {
  const doc = await call("POST", path`/quarry/knowledgebases/${kbId}/datasources/${dsId}/documents/chunks`, { documentKey: key });
  const chunks = doc.chunks.map((c, i) =>
    h(
      "section",
      { class: "chunk", "aria-labelledby": `chunk-${i}` },
      h("h3", { id: `chunk-${i}` }, `Chunk ${i + 1}`),
      h(
        "p",
        { class: "meta" },
        c.page ? `page ${c.page} · ` : "",
        `characters ${c.span.start}–${c.span.end} · ${c.tokens} tokens · id ${c.chunkId}`,
      ),
      h("div", { class: "text" }, c.text),
      h(
        "details",
        {},
        h("summary", {}, "Metadata"),
        h("dl", {}, Object.entries(c.metadata).map(([k, v]) => [h("dt", {}, k), h("dd", {}, JSON.stringify(v))])),
      ),
    ),
  );
  const total = doc.chunks.reduce((n, c) => n + c.tokens, 0);
  render(
    key,
    h("p", { class: "tabs" }, link(`#/kb/${encodeURIComponent(kbId)}/ds/${encodeURIComponent(dsId)}`, "← Data source")),
    h("p", {}, doc.sourceUri || "", h("br"), `${doc.chunks.length} chunks, ${total} tokens`),
    h(
      "details",
      { id: "parsed-text" },
      h("summary", {}, "Text the parser extracted"),
      doc.parsedText !== undefined ? h("pre", {}, doc.parsedText) : h("p", { class: "muted" }, doc.parsedTextUnavailable),
    ),
    h("h2", {}, "Chunks"),
    chunks.length ? chunks : h("p", { class: "muted" }, "This document has no chunks."),
  );
}
