#!/usr/bin/env python3
"""Cluster mode, measured: replicas of `quarry serve` over one PostgreSQL (pgvector) database,
syncing SciFact abstracts (one file each) from a moto S3 bucket with the real model.

  ingest  — one sync of DOCS abstracts with 1, 2 and 3 replicas: seconds, documents/s and
            chunks/s, and how many documents each replica did.
  quality — SciFact train nDCG@10 and recall@10 through the Retrieve API (SEMANTIC and
            HYBRID), one node (embedded HNSW + its lexical index) against a cluster replica
            (pgvector + the lexical index it follows from the change log).

Run through benches/cluster.sh, which builds the binary and starts PostgreSQL:
  benches/cluster.sh ingest            # DOCS=1000 by default
  benches/cluster.sh quality           # all 5,183 abstracts, all judged train queries
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "boto3"))
from harness import KEY_ID, MODEL, S3Server  # noqa: E402
from test_cluster import Replica, psql  # noqa: E402

SCIFACT = os.path.join(ROOT, "..", "shared", "data", "scifact")
BUCKET = "scifact"


def upload(s3, n):
    s3.client.create_bucket(Bucket=BUCKET)
    count = 0
    with open(os.path.join(SCIFACT, "corpus.jsonl")) as f:
        for line in f:
            if count >= n:
                break
            d = json.loads(line)
            s3.client.put_object(Bucket=BUCKET, Key=f"{d['_id']}.txt",
                                 Body=f"{d['title']}\n\n{d['text']}\n".encode())
            count += 1
    return count


def config(s3, db, chunking, cluster=True):
    store = f'vector_store = {{ type = "pgvector", url = "{db}", table = "scifact" }}' if cluster else ""
    section = f"""
[cluster]
database_url = "{db}"
replica_name = "REPLICA"
""" if cluster else ""
    return f"""[server]
data_dir = "data"

[[server.access_keys]]
id = "{KEY_ID}"
secret_env = "QUARRY_TEST_SECRET"
knowledge_bases = ["*"]
{section}
[s3]
endpoint_url = "{s3.url}"
region = "us-east-1"

[models.minilm]
kind = "bert"
path = "{MODEL}"

[[knowledge_bases]]
id = "SCIFACTKB1"
name = "scifact"
embedding_model = "minilm"
{store}

[[knowledge_bases.data_sources]]
id = "SCIFACTDS1"
name = "abstracts"
type = "s3"
bucket = "{BUCKET}"
chunking = {{ strategy = "{chunking}" }}
"""


def fresh_database(label):
    base = os.environ["QUARRY_TEST_PG_URL"]
    name = f"quarry_bench_{label}_{os.getpid()}"
    psql(base, f"DROP DATABASE IF EXISTS {name}")
    psql(base, f"CREATE DATABASE {name}")
    return f"{base.rsplit('/', 1)[0]}/{name}"


def sync(replica):
    agent = replica.client("bedrock-agent")
    job = agent.start_ingestion_job(knowledgeBaseId="SCIFACTKB1", dataSourceId="SCIFACTDS1")["ingestionJob"]
    started = time.time()
    while True:
        job = agent.get_ingestion_job(knowledgeBaseId="SCIFACTKB1", dataSourceId="SCIFACTDS1",
                                      ingestionJobId=job["ingestionJobId"])["ingestionJob"]
        if job["status"] in ("COMPLETE", "FAILED", "STOPPED"):
            return job, time.time() - started
        time.sleep(0.5)


def ingest(s3, docs):
    rows = []
    for n in (0, 1, 2, 3):
        # 0: one node without [cluster] (embedded HNSW store, SQLite ledger), for reference.
        db = fresh_database(f"ingest{n}")
        replicas = [Replica(f"bench-{i}", config(s3, db, "DEFAULT", cluster=n > 0))
                    for i in range(1, max(n, 1) + 1)]
        try:
            for r in replicas:
                r.wait_ready()
            job, seconds = sync(replicas[0])
            assert job["status"] == "COMPLETE", job
            if n == 0:
                chunks = chunk_count(replicas[0])
                per = [docs]
            else:
                chunks = int(psql(db, "SELECT count(*) FROM scifact")[0][0])
                per = [r.processed() for r in replicas]
            rows.append((n, seconds, docs / seconds, chunks / seconds, per))
            print(f"{n or 'one node, no'} replica(s): {chunks} chunks in {seconds:.1f} s, {docs / seconds:.1f} documents/s, "
                  f"{chunks / seconds:.1f} chunks/s, documents per replica {per}", flush=True)
        finally:
            for r in replicas:
                r.close()
    print("\n| replicas | seconds | documents/s | chunks/s | documents per replica |")
    print("|---|---|---|---|---|")
    for n, seconds, dps, cps, per in rows:
        print(f"| {n or 'one node (no [cluster])'} | {seconds:.1f} | {dps:.1f} | {cps:.1f} | {' / '.join(map(str, per))} |")


def chunk_count(replica):
    """Chunks of a single node's knowledge base (GetKnowledgeBase does not say; `quarry
    inspect` does, reading its data directory once the server has stopped)."""
    replica.stop()
    out = subprocess.run([os.environ["QUARRY_BIN"], "--config",
                          os.path.join(replica.dir, "knowledge-bases.toml"), "inspect", "scifact"],
                         check=True, capture_output=True, text=True, cwd=replica.dir).stdout
    replica.start()
    return json.loads(out)["chunks"]


def ndcg_at_10(ranked, relevant):
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def scores(replica, queries, qrels):
    rt = replica.client("bedrock-agent-runtime")
    out = {}
    for search_type in ("SEMANTIC", "HYBRID"):
        ndcg = recall = 0.0
        for qid, text in queries:
            results = rt.retrieve(knowledgeBaseId="SCIFACTKB1", retrievalQuery={"text": text},
                                  retrievalConfiguration={"vectorSearchConfiguration": {
                                      "numberOfResults": 10, "overrideSearchType": search_type}})
            ranked = [os.path.basename(r["location"]["s3Location"]["uri"])[:-4]
                      for r in results["retrievalResults"]]
            relevant = qrels[qid]
            ndcg += ndcg_at_10(ranked, relevant)
            recall += len(set(ranked) & set(relevant)) / len(relevant)
        out[search_type] = (ndcg / len(queries), recall / len(queries))
    return out


def quality(s3, docs):
    qrels = {}
    with open(os.path.join(SCIFACT, "qrels", "train.tsv")) as f:
        next(f)
        for line in f:
            q, d, s = line.rstrip("\n").split("\t")
            qrels.setdefault(q, {})[d] = int(s)
    queries = []
    with open(os.path.join(SCIFACT, "queries.jsonl")) as f:
        for line in f:
            q = json.loads(line)
            if q["_id"] in qrels:
                queries.append((q["_id"], q["text"]))
    results = {}
    db = fresh_database("quality")
    for label, cluster in (("one node", False), ("cluster replica", True)):
        replica = Replica(label.replace(" ", "-"), config(s3, db, "NONE", cluster=cluster))
        try:
            replica.wait_ready()
            job, seconds = sync(replica)
            assert job["status"] == "COMPLETE", job
            print(f"{label}: synced {docs} abstracts in {seconds:.0f} s", flush=True)
            replica.wait_ready()
            time.sleep(2)  # (the lexical follower polls every 0.2 s)
            results[label] = scores(replica, queries, qrels)
            print(f"{label}: {results[label]}", flush=True)
        finally:
            replica.close()
    print(f"\nSciFact train, {len(queries)} queries, {docs} abstracts, Retrieve API, 10 results:")
    print("| | SEMANTIC nDCG@10 | SEMANTIC recall@10 | HYBRID nDCG@10 | HYBRID recall@10 |")
    print("|---|---|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['SEMANTIC'][0]:.3f} | {r['SEMANTIC'][1]:.3f} | {r['HYBRID'][0]:.3f} | {r['HYBRID'][1]:.3f} |")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "ingest"
    docs = int(os.environ.get("DOCS", "1000" if mode == "ingest" else "5183"))
    s3 = S3Server()
    try:
        print(f"uploading {docs} SciFact abstracts to moto S3 ...", flush=True)
        docs = upload(s3, docs)
        {"ingest": ingest, "quality": quality}[mode](s3, docs)
    finally:
        s3.close()


if __name__ == "__main__":
    main()
