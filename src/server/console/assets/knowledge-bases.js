// Knowledge bases: the list, creating one, and one's details with its data sources.

import { call, listAll, path, currentSession } from "./api.js";
import { errorBox, field, h, link, render, select, table, when } from "./dom.js";

export function modelArn(name) {
  return `arn:aws:bedrock:${currentSession().region}::foundation-model/${name}`;
}

export function modelName(arn) {
  return (arn || "").split("foundation-model/").pop();
}

export async function knowledgeBases() {
  const [summaries, models] = await Promise.all([
    listAll("/knowledgebases/", "knowledgeBaseSummaries"),
    call("GET", "/quarry/models"),
  ]);
  const rows = summaries.map((kb) => [
    link(`#/kb/${encodeURIComponent(kb.knowledgeBaseId)}`, kb.name),
    kb.knowledgeBaseId,
    kb.status,
    kb.description || "",
    when(kb.updatedAt),
  ]);
  render(
    "Knowledge bases",
    rows.length ? table(["Name", "Id", "Status", "Description", "Updated"], rows) : h("p", { class: "muted" }, "No knowledge base this key may use."),
    createKnowledgeBaseForm(models.embeddingModels),
  );
}

function createKnowledgeBaseForm(embeddingModels) {
  const name = h("input", { type: "text", name: "name", required: true, pattern: "([0-9a-zA-Z][_\\-]?){1,100}" });
  const description = h("input", { type: "text", name: "description" });
  const model = select("embeddingModel", embeddingModels.map((m) => [m, m]), embeddingModels[0]);
  const storage = h("textarea", { name: "storageConfiguration", placeholder: '{"type": "RDS", "rdsConfiguration": {…}}' });
  const message = h("div", { "aria-live": "polite" });
  return h(
    "form",
    {
      "aria-labelledby": "create-kb",
      onsubmit: async (event) => {
        event.preventDefault();
        message.replaceChildren();
        const body = {
          name: name.value.trim(),
          knowledgeBaseConfiguration: {
            type: "VECTOR",
            vectorKnowledgeBaseConfiguration: { embeddingModelArn: modelArn(model.value) },
          },
        };
        if (description.value.trim()) body.description = description.value.trim();
        try {
          if (storage.value.trim()) body.storageConfiguration = JSON.parse(storage.value);
          const created = await call("PUT", "/knowledgebases/", body);
          location.hash = `#/kb/${encodeURIComponent(created.knowledgeBase.knowledgeBaseId)}`;
        } catch (e) {
          message.append(errorBox(e, "Not created: "));
        }
      },
    },
    h("h2", { id: "create-kb" }, "Create a knowledge base"),
    field("Name", name),
    field("Description", description),
    field("Embedding model", model),
    field("Storage configuration (optional JSON)", storage, "Empty: Quarry's own store (the embedded HNSW index, or pgvector in a cluster)."),
    h("button", { type: "submit" }, "Create knowledge base"),
    message,
  );
}

export async function knowledgeBase(kbId) {
  const kbPath = path`/knowledgebases/${kbId}`;
  const [{ knowledgeBase: kb }, sources, summary] = await Promise.all([
    call("GET", kbPath),
    listAll(`${kbPath}/datasources/`, "dataSourceSummaries"),
    call("GET", path`/quarry/knowledgebases/${kbId}/summary`),
  ]);
  let tags = {};
  try {
    tags = (await call("GET", path`/tags/${kb.knowledgeBaseArn}`)).tags || {};
  } catch {
    // tags are optional
  }
  const documentsOf = Object.fromEntries(summary.dataSources.map((d) => [d.dataSourceId, d]));
  const totalDocuments = summary.dataSources.reduce((n, d) => n + d.documents, 0);
  const vector = kb.knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration || {};
  const details = h(
    "dl",
    {},
    h("dt", {}, "Id"), h("dd", {}, kb.knowledgeBaseId),
    h("dt", {}, "ARN"), h("dd", {}, kb.knowledgeBaseArn),
    h("dt", {}, "Status"), h("dd", {}, kb.status),
    h("dt", {}, "Description"), h("dd", {}, kb.description || "—"),
    h("dt", {}, "Embedding model"), h("dd", {}, modelName(vector.embeddingModelArn)),
    h("dt", {}, "Store"), h("dd", {}, storeText(kb.storageConfiguration)),
    h("dt", {}, "Documents"), h("dd", { id: "kb-documents" }, String(totalDocuments)),
    h("dt", {}, "Chunks"), h("dd", { id: "kb-chunks" }, String(summary.chunks)),
    h("dt", {}, "Tags"), h("dd", {}, Object.keys(tags).length ? Object.entries(tags).map(([k, v]) => `${k}=${v}`).join(", ") : "—"),
    h("dt", {}, "Updated"), h("dd", {}, when(kb.updatedAt)),
  );
  const rows = sources.map((ds) => [
    link(`#/kb/${encodeURIComponent(kbId)}/ds/${encodeURIComponent(ds.dataSourceId)}`, ds.name),
    ds.dataSourceId,
    ds.status,
    String((documentsOf[ds.dataSourceId] || {}).documents ?? ""),
    when(ds.updatedAt),
  ]);
  render(
    kb.name,
    h("p", { class: "tabs" }, link("#/", "← Knowledge bases"), link(`#/kb/${encodeURIComponent(kbId)}/test`, "Test this knowledge base →")),
    details,
    h("h2", {}, "Data sources"),
    rows.length ? table(["Name", "Id", "Status", "Documents", "Updated"], rows) : h("p", { class: "muted" }, "No data source yet."),
    createDataSourceForm(kbId),
  );
}

function storeText(storage) {
  if (!storage) return "—";
  const detail = storage.rdsConfiguration
    ? ` (table ${storage.rdsConfiguration.tableName})`
    : storage.quarryQdrantConfiguration
      ? ` (collection ${storage.quarryQdrantConfiguration.collectionName})`
      : "";
  return `${storage.type}${detail}`;
}

function createDataSourceForm(kbId) {
  const name = h("input", { type: "text", name: "name", required: true });
  const bucket = h("input", { type: "text", name: "bucket", required: true, placeholder: "my-bucket", spellcheck: false });
  const prefix = h("input", { type: "text", name: "prefix", placeholder: "docs/", spellcheck: false });
  const strategy = select("chunking", [["DEFAULT", "Default (300 tokens, 20% overlap)"], ["FIXED_SIZE", "Fixed size"], ["NONE", "None (one chunk per document)"]], "DEFAULT");
  const maxTokens = h("input", { type: "number", name: "maxTokens", value: "300", min: "1" });
  const overlap = h("input", { type: "number", name: "overlapPercentage", value: "20", min: "1", max: "99" });
  const message = h("div", { "aria-live": "polite" });
  return h(
    "form",
    {
      "aria-labelledby": "create-ds",
      onsubmit: async (event) => {
        event.preventDefault();
        message.replaceChildren();
        const s3Configuration = { bucketArn: `arn:aws:s3:::${bucket.value.trim()}` };
        if (prefix.value.trim()) s3Configuration.inclusionPrefixes = [prefix.value.trim()];
        const body = { name: name.value.trim(), dataSourceConfiguration: { type: "S3", s3Configuration } };
        if (strategy.value !== "DEFAULT") {
          const chunkingConfiguration = { chunkingStrategy: strategy.value };
          if (strategy.value === "FIXED_SIZE") {
            chunkingConfiguration.fixedSizeChunkingConfiguration = { maxTokens: Number(maxTokens.value), overlapPercentage: Number(overlap.value) };
          }
          body.vectorIngestionConfiguration = { chunkingConfiguration };
        }
        try {
          const created = await call("PUT", path`/knowledgebases/${kbId}/datasources/`, body);
          location.hash = `#/kb/${encodeURIComponent(kbId)}/ds/${encodeURIComponent(created.dataSource.dataSourceId)}`;
        } catch (e) {
          message.append(errorBox(e, "Not created: "));
        }
      },
    },
    h("h2", { id: "create-ds" }, "Add an S3 data source"),
    field("Name", name),
    field("Bucket", bucket, "The server must allow it ([s3] allowed_buckets)."),
    field("Prefix (optional)", prefix),
    field("Chunking", strategy),
    h("div", { class: "row" }, field("Max tokens (fixed size)", maxTokens), field("Overlap % (fixed size)", overlap)),
    h("button", { type: "submit" }, "Add data source"),
    message,
  );
}
