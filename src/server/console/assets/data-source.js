// One data source: its settings, syncing it and watching the job live, its job history with
// Bedrock's statistics and failure reasons, and its documents.

import { call, listAll, path } from "./api.js";
import { errorBox, field, h, link, live, onLeave, render, table, when } from "./dom.js";

const RUNNING = new Set(["STARTING", "IN_PROGRESS", "STOPPING"]);

function chunkingText(ds) {
  const c = ((ds.vectorIngestionConfiguration || {}).chunkingConfiguration) || { chunkingStrategy: "DEFAULT" };
  const fixed = c.fixedSizeChunkingConfiguration;
  return fixed ? `${c.chunkingStrategy} (${fixed.maxTokens} tokens, ${fixed.overlapPercentage}% overlap)` : c.chunkingStrategy;
}

function sourceText(ds) {
  const conf = ds.dataSourceConfiguration || {};
  const s3 = conf.s3Configuration;
  if (s3) return `${conf.type} ${s3.bucketArn}${(s3.inclusionPrefixes || []).map((p) => ` /${p}`).join("")}`;
  return conf.type || "—";
}

// `showJob`: a finished job to show (the page is drawn again when a job it follows ends).
export async function dataSource(kbId, dsId, showJob) {
  const base = path`/knowledgebases/${kbId}/datasources/${dsId}`;
  const [{ dataSource: ds }, jobs, documents] = await Promise.all([
    call("GET", base),
    listAll(`${base}/ingestionjobs/`, "ingestionJobSummaries"),
    listAll(path`/quarry/knowledgebases/${kbId}/datasources/${dsId}/documents`, "documents"),
  ]);
  jobs.sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1));
  const watch = live();
  const startButton = h("button", { type: "button", onclick: () => start() }, "Start sync");
  let timer = null;
  let panel = null;
  onLeave(() => clearTimeout(timer));

  async function start() {
    startButton.disabled = true;
    try {
      const { ingestionJob } = await call("PUT", `${base}/ingestionjobs/`, {});
      follow(ingestionJob.ingestionJobId);
    } catch (e) {
      watch.replaceChildren(errorBox(e, "Not started: "));
      startButton.disabled = false;
    }
  }

  async function follow(jobId) {
    clearTimeout(timer);
    try {
      const { ingestionJob: job } = await call("GET", `${base}/ingestionjobs/${encodeURIComponent(jobId)}`);
      if (!panel || panel.jobId !== jobId || !watch.contains(panel.element)) {
        panel = jobPanel(jobId, () => stop(jobId));
        watch.replaceChildren(panel.element);
      }
      panel.update(job);
      if (RUNNING.has(job.status)) {
        startButton.disabled = true;
        timer = setTimeout(() => follow(jobId), 1000);
      } else {
        startButton.disabled = false;
        // Shown again so the history and the documents include this job's work.
        if (jobId !== showJob) await dataSource(kbId, dsId, jobId);
      }
    } catch (e) {
      watch.replaceChildren(errorBox(e));
    }
  }

  async function stop(jobId) {
    try {
      await call("POST", `${base}/ingestionjobs/${encodeURIComponent(jobId)}/stop`, {});
    } catch (e) {
      watch.append(errorBox(e, "Not stopped: "));
    }
  }

  const history = jobs.map((j) => [
    h("button", { type: "button", class: "secondary", onclick: () => follow(j.ingestionJobId), "aria-label": `Show job ${j.ingestionJobId}` }, j.ingestionJobId),
    h("span", { class: `status-${j.status}` }, j.status),
    when(j.startedAt),
    when(j.updatedAt),
    String(j.statistics.numberOfDocumentsScanned),
    String(j.statistics.numberOfNewDocumentsIndexed),
    String(j.statistics.numberOfModifiedDocumentsIndexed),
    String(j.statistics.numberOfDocumentsDeleted),
    String(j.statistics.numberOfDocumentsFailed),
  ]);
  const docRows = documents.map((d) => [
    link(`#/kb/${encodeURIComponent(kbId)}/ds/${encodeURIComponent(dsId)}/doc/${encodeURIComponent(d.documentKey)}`, d.documentKey),
    d.status,
    String(d.chunks),
    String(d.size),
  ]);
  render(
    ds.name,
    h("p", { class: "tabs" }, link(`#/kb/${encodeURIComponent(kbId)}`, "← Knowledge base"), link(`#/kb/${encodeURIComponent(kbId)}/test`, "Test →")),
    h(
      "dl",
      {},
      h("dt", {}, "Id"), h("dd", {}, ds.dataSourceId),
      h("dt", {}, "Source"), h("dd", {}, sourceText(ds)),
      h("dt", {}, "Chunking"), h("dd", {}, chunkingText(ds)),
      h("dt", {}, "Deletion policy"), h("dd", {}, ds.dataDeletionPolicy || "DELETE"),
      h("dt", {}, "Status"), h("dd", {}, ds.status),
    ),
    h("h2", {}, "Sync"),
    startButton,
    watch,
    h("h2", {}, "Job history"),
    history.length
      ? table(["Job", "Status", "Started", "Updated", "Scanned", "New", "Modified", "Deleted", "Failed"], history)
      : h("p", { class: "muted" }, "No job yet."),
    h("h2", {}, `Documents (${documents.length})`),
    docRows.length ? table(["Document", "Status", "Chunks", "Bytes"], docRows) : h("p", { class: "muted" }, "Nothing indexed yet."),
  );
  const running = jobs.find((j) => RUNNING.has(j.status));
  if (showJob || running) follow(showJob || running.ingestionJobId);
}

// The followed job's panel, built once and updated in place on every poll, so the Stop button
// and the failure filter keep their focus and what was typed while the job runs.
function jobPanel(jobId, stop) {
  const status = h("span", { id: "job-status" });
  const started = h("span");
  const bar = h("progress", { id: "job-bar" });
  const progress = h("p", { id: "job-progress" });
  const stopButton = h("button", { type: "button", class: "secondary", onclick: stop }, "Stop sync");
  const heading = h("h3");
  const list = h("ul", { id: "failure-reasons" });
  const filter = h("input", { type: "search", name: "failureFilter", placeholder: "filter by document or reason" });
  const failures = h("div", { hidden: true }, heading, field("Filter failures", filter), list);
  let reasons = [];
  const showReasons = () => {
    const q = filter.value.toLowerCase();
    list.replaceChildren(...reasons.filter((r) => r.toLowerCase().includes(q)).map((r) => h("li", {}, r)));
  };
  filter.addEventListener("input", showReasons);
  const element = h(
    "div",
    { class: "panel", id: "job" },
    h("p", {}, "Job ", h("strong", {}, jobId), ": ", status, " · started ", started),
    h("label", { for: "job-bar", class: "meta" }, "Documents processed"),
    bar,
    progress,
    stopButton,
    failures,
  );

  function update(job) {
    const s = job.statistics;
    const processed = s.numberOfNewDocumentsIndexed + s.numberOfModifiedDocumentsIndexed + s.numberOfDocumentsDeleted + s.numberOfDocumentsFailed;
    const seconds = Math.max((new Date(job.updatedAt) - new Date(job.startedAt)) / 1000, 0.001);
    element.dataset.status = job.status;
    status.className = `status-${job.status}`;
    status.textContent = job.status;
    started.textContent = when(job.startedAt);
    bar.max = Math.max(s.numberOfDocumentsScanned, 1);
    bar.value = processed;
    progress.textContent =
      `${processed} of ${s.numberOfDocumentsScanned} scanned documents changed and processed · ${(processed / seconds).toFixed(1)} documents/s · ` +
      `${s.numberOfNewDocumentsIndexed} new, ${s.numberOfModifiedDocumentsIndexed} modified, ${s.numberOfMetadataDocumentsModified} metadata changed, ${s.numberOfDocumentsDeleted} deleted, ${s.numberOfDocumentsFailed} failed`;
    stopButton.hidden = !RUNNING.has(job.status);
    reasons = job.failureReasons || [];
    heading.textContent = `Failures (${reasons.length})`;
    failures.hidden = reasons.length === 0;
    showReasons();
  }
  return { jobId, element, update };
}
