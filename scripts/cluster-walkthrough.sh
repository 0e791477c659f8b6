#!/usr/bin/env bash
# Three replicas of `quarry serve` on this machine (ports 8081-8083) over one PostgreSQL, as
# the README's cluster walkthrough ran: 400 SciFact abstracts in a moto S3 bucket, a sync
# started through node-1, `quarry cluster status` during and after, the job read through
# node-3, a HYBRID Retrieve through node-2.
#
#   QUARRY_BIN=target/release/quarry python3 scripts/with-postgres.py -- scripts/cluster-walkthrough.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d)}
cd "$WORK"
Q=${QUARRY_BIN:?set QUARRY_BIN to the quarry binary}
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p $PORT >/dev/null 2>&1 & MOTO=$!
sleep 2
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 QUARRY_SECRET=walkthrough-secret
python3 - <<PY
import boto3, json
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:$PORT")
s3.create_bucket(Bucket="handbook")
for i, line in enumerate(open("$ROOT/../shared/data/scifact/corpus.jsonl")):
    if i == 400: break
    d = json.loads(line)
    s3.put_object(Bucket="handbook", Key=f"abstracts/{d['_id']}.txt", Body=(d["title"] + "\n\n" + d["text"]).encode())
PY
DB=${QUARRY_TEST_PG_URL%/*}/quarry
LD_LIBRARY_PATH=${QUARRY_TEST_PG_BIN%/bin}/lib $QUARRY_TEST_PG_BIN/psql "$QUARRY_TEST_PG_URL" -qc "CREATE DATABASE quarry"
for n in 1 2 3; do
  mkdir -p node-$n
  cat > node-$n/knowledge-bases.toml <<TOML
[server]
data_dir = "data"
[[server.access_keys]]
id = "AKIDWALKTHROUGH00001"
secret_env = "QUARRY_SECRET"
knowledge_bases = ["*"]
[cluster]
database_url = "$DB"
replica_name = "node-$n"
[s3]
endpoint_url = "http://127.0.0.1:$PORT"
region = "us-east-1"
[models.minilm]
kind = "bert"
path = "$ROOT/models/all-MiniLM-L6-v2"
[[knowledge_bases]]
id = "HANDBOOK01"
name = "handbook"
embedding_model = "minilm"
vector_store = { type = "pgvector", url = "$DB", table = "handbook" }
[[knowledge_bases.data_sources]]
id = "HANDBOOKS3"
name = "bucket"
type = "s3"
bucket = "handbook"
TOML
  (cd node-$n && $Q serve --listen 127.0.0.1:808$n > serve.log 2>&1 &)
done
sleep 3
for n in 1 2 3; do curl -s -o /dev/null -w "node-$n /health/ready %{http_code}\n" http://127.0.0.1:808$n/health/ready; done
python3 - <<PY
import boto3
agent = boto3.client("bedrock-agent", endpoint_url="http://127.0.0.1:8081", aws_access_key_id="AKIDWALKTHROUGH00001", aws_secret_access_key="walkthrough-secret")
job = agent.start_ingestion_job(knowledgeBaseId="handbook", dataSourceId="HANDBOOKS3")["ingestionJob"]
print("started", job["ingestionJobId"], "through node-1")
PY
sleep 4
echo '$ quarry cluster status'
(cd node-2 && $Q cluster status)
sleep 1
python3 - <<PY
import boto3, time
agent = boto3.client("bedrock-agent", endpoint_url="http://127.0.0.1:8083", aws_access_key_id="AKIDWALKTHROUGH00001", aws_secret_access_key="walkthrough-secret")
while True:
    [j] = agent.list_ingestion_jobs(knowledgeBaseId="handbook", dataSourceId="HANDBOOKS3")["ingestionJobSummaries"]
    if j["status"] in ("COMPLETE", "FAILED", "STOPPED"): break
    time.sleep(1)
print("through node-3:", j["status"], j["statistics"])
rt = boto3.client("bedrock-agent-runtime", endpoint_url="http://127.0.0.1:8082", aws_access_key_id="AKIDWALKTHROUGH00001", aws_secret_access_key="walkthrough-secret")
r = rt.retrieve(knowledgeBaseId="handbook", retrievalQuery={"text": "vitamin D and bone fractures"}, retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 3, "overrideSearchType": "HYBRID"}})
for x in r["retrievalResults"]: print("node-2 HYBRID", round(x["score"], 3), x["location"]["s3Location"]["uri"])
PY
sleep 2
echo '$ quarry cluster status'
(cd node-1 && $Q cluster status)
pkill -f "serve --listen 127.0.0.1:808" || true
kill $MOTO
