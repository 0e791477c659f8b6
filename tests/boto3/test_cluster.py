"""Cluster mode end to end: three replicas of `quarry serve`, each with its own data
directory, over one real PostgreSQL database (vectors in pgvector there, and for a second
knowledge base in a real Qdrant), syncing real (moto) S3 buckets with the real model. Ingestion is shared among the replicas; one is killed with SIGKILL mid-
job and the job still completes with every document indexed once (its chunk ids compared
with a single-node sync of the same bucket); every replica answers Retrieve (SEMANTIC and
HYBRID) identically; a RetrieveAndGenerate session continues on another replica; a knowledge
base created through one is listed by another; a replica whose data directory is deleted
catches up."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request

from harness import KEY_ID, MODEL, SECRET, NO_RETRIES, S3Server
from openai_server import OpenAiServer

import boto3

BUCKET = "cluster-docs"
TOPICS = ["solar panels", "river otters", "bread baking", "glacier retreat", "chess openings",
          "coral reefs", "jet engines", "honey bees", "volcano monitoring", "tea ceremonies"]


def document(i):
    topic = TOPICS[i % len(TOPICS)]
    return (f"Report {i} on {topic}. " + " ".join(
        f"Observation {j} about {topic} in region {i}: measurements were recorded and reviewed."
        for j in range(12))).encode()


def psql(url, sql):
    """Runs SQL with the server's own psql; returns the rows (tab-separated)."""
    bin_dir = os.environ["QUARRY_TEST_PG_BIN"]
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(os.path.dirname(bin_dir), "lib"))
    out = subprocess.run([os.path.join(bin_dir, "psql"), url, "-At", "-F", "\t", "-c", sql],
                         check=True, capture_output=True, env=env, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


class Replica:
    def __init__(self, name, config, wait=True):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"quarry-{name}-")
        with open(os.path.join(self.dir, "knowledge-bases.toml"), "w") as f:
            f.write(config.replace("REPLICA", name))
        self.launch()
        if wait:
            self.started()

    def start(self):
        self.launch()
        self.started()

    def launch(self):
        env = dict(os.environ, QUARRY_TEST_SECRET=SECRET, AWS_ACCESS_KEY_ID="test",
                   AWS_SECRET_ACCESS_KEY="test", TEST_LLM_KEY="sk-test",
                   QUARRY_TEST_EVENTS_KEY="events-key")
        self.log = open(os.path.join(self.dir, "server.log"), "ab")
        self.process = subprocess.Popen(
            [os.environ["QUARRY_BIN"], "--config", os.path.join(self.dir, "knowledge-bases.toml"),
             "serve", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=self.log, env=env)

    def started(self):
        line = self.process.stdout.readline().decode()
        self.process.stdout.close()
        if "://" not in line:
            raise RuntimeError(f"{self.name} did not start: {line!r}; see {self.dir}/server.log")
        self.url = line.strip().split(" on ")[-1]

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health/ready", timeout=5) as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} never became ready")

    def client(self, service):
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, config=NO_RETRIES)

    def processed(self):
        """Documents this replica processed for ingestion jobs (its /metrics)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("quarry_cluster_items_processed_total "):
                    return int(line.split()[1])
        raise AssertionError("no quarry_cluster_items_processed_total")

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)
        self.log.close()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s3 = S3Server()
        cls.s3.client.create_bucket(Bucket=BUCKET)
        cls.s3.client.create_bucket(Bucket="scheduled")
        cls.s3.client.create_bucket(Bucket="qdrant-docs")
        for i in range(12):
            cls.s3.client.put_object(Bucket="qdrant-docs", Key=f"q{i:02d}.txt", Body=document(i))
        for i in range(60):
            cls.s3.client.put_object(Bucket=BUCKET, Key=f"reports/r{i:03d}.txt", Body=document(i))
        cls.llm = OpenAiServer()
        base = os.environ["QUARRY_TEST_PG_URL"]
        name = f"quarry_cluster_{os.getpid()}"
        psql(base, f"DROP DATABASE IF EXISTS {name}")
        psql(base, f"CREATE DATABASE {name}")
        cls.db = f"{base.rsplit('/', 1)[0]}/{name}"
        cls.config = f"""[server]
data_dir = "data"
events_api_key_env = "QUARRY_TEST_EVENTS_KEY"

[[server.access_keys]]
id = "{KEY_ID}"
secret_env = "QUARRY_TEST_SECRET"
knowledge_bases = ["*"]

[cluster]
database_url = "{cls.db}"
replica_name = "REPLICA"
lease_secs = 3
claim_batch = 2

[s3]
endpoint_url = "{cls.s3.url}"
region = "us-east-1"
allowed_buckets = ["*"]

[models.minilm]
kind = "bert"
path = "{MODEL}"

[models.cite]
kind = "openai"
base_url = "{cls.llm.url}"
model = "cite"
api_key_env = "TEST_LLM_KEY"

[[knowledge_bases]]
id = "CLUSTERKB1"
name = "reports"
embedding_model = "minilm"
vector_store = {{ type = "pgvector", url = "{cls.db}", table = "cluster_reports" }}

[[knowledge_bases.data_sources]]
id = "CLUSTERDS1"
name = "bucket"
type = "s3"
bucket = "{BUCKET}"

[[knowledge_bases.data_sources]]
id = "SCHEDULED1"
name = "scheduled"
type = "s3"
bucket = "scheduled"
sync_interval = "2s"

[[knowledge_bases]]
id = "CLUSTERKB2"
name = "on-qdrant"
embedding_model = "minilm"
vector_store = {{ type = "qdrant", url = "{os.environ["QDRANT_URL"]}", collection = "{name}" }}

[[knowledge_bases.data_sources]]
id = "CLUSTERDS2"
name = "bucket"
type = "s3"
bucket = "qdrant-docs"

[[knowledge_bases.data_sources]]
id = "CUSTOMDS02"
name = "direct"
type = "custom"
"""
        cls.started = time.time()
        # Started together on a database none has seen: the schema, the tables and the
        # extension are made once, whoever comes first.
        cls.replicas = [Replica(f"replica-{i}", cls.config, wait=False) for i in (1, 2, 3)]
        for r in cls.replicas:
            r.started()

    @classmethod
    def tearDownClass(cls):
        for r in cls.replicas:
            r.close()
        cls.s3.close()
        cls.llm.close()

    def wait_job(self, replica, job_id, timeout=600, ds="CLUSTERDS1", kb="CLUSTERKB1"):
        agent = replica.client("bedrock-agent")
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = agent.get_ingestion_job(knowledgeBaseId=kb, dataSourceId=ds,
                                          ingestionJobId=job_id)["ingestionJob"]
            if job["status"] in ("COMPLETE", "FAILED", "STOPPED"):
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} did not finish")

    def status(self):
        out = subprocess.run([os.environ["QUARRY_BIN"], "--config",
                              os.path.join(self.replicas[0].dir, "knowledge-bases.toml"),
                              "cluster", "status", "--json"], capture_output=True, check=True, text=True)
        return json.loads(out.stdout)

    def retrieve_everywhere(self, query, search_type, replicas, kb="CLUSTERKB1"):
        answers = []
        for r in replicas:
            out = r.client("bedrock-agent-runtime").retrieve(
                knowledgeBaseId=kb, retrievalQuery={"text": query},
                retrievalConfiguration={"vectorSearchConfiguration": {
                    "numberOfResults": 5, "overrideSearchType": search_type}})
            answers.append([(x["location"]["s3Location"]["uri"], round(x["score"], 4))
                            for x in out["retrievalResults"]])
        return answers

    def wait_caught_up(self, replicas, timeout=60):
        deadline = time.time() + timeout
        names = {r.name for r in replicas}
        while time.time() < deadline:
            rows = [x for x in self.status()["replicas"] if x["name"] in names]
            if len(rows) == len(names) and all(x["lexical_lag"] == 0 and x["ready"] for x in rows):
                return
            time.sleep(0.5)
        raise AssertionError(f"replicas did not catch up: {self.status()}")

    def test_three_replicas_share_the_work_and_answer_alike(self):
        one, two, three = self.replicas
        for r in self.replicas:
            r.wait_ready()

        # -- a sync started on replica 1 is done by all three, read through replica 2 ----------
        job = one.client("bedrock-agent").start_ingestion_job(
            knowledgeBaseId="CLUSTERKB1", dataSourceId="CLUSTERDS1")["ingestionJob"]
        with self.assertRaises(two.client("bedrock-agent").exceptions.ConflictException):
            two.client("bedrock-agent").start_ingestion_job(knowledgeBaseId="CLUSTERKB1",
                                                            dataSourceId="CLUSTERDS1")
        done = self.wait_job(two, job["ingestionJobId"])
        self.assertEqual(done["status"], "COMPLETE", done)
        stats = done["statistics"]
        self.assertEqual(stats["numberOfDocumentsScanned"], 60)
        self.assertEqual(stats["numberOfNewDocumentsIndexed"], 60)
        self.assertEqual(stats["numberOfDocumentsFailed"], 0)
        per_replica = [r.processed() for r in self.replicas]
        self.assertEqual(sum(per_replica), 60, per_replica)  # (each document counted once)
        self.assertTrue(all(n > 0 for n in per_replica), f"documents per replica: {per_replica}")

        # -- every replica answers alike, SEMANTIC and HYBRID ------------------------------------
        self.wait_caught_up(self.replicas)
        for search_type in ("SEMANTIC", "HYBRID"):
            for query in ("honey bees in region 3", "glacier retreat measurements"):
                answers = self.retrieve_everywhere(query, search_type, self.replicas)
                self.assertEqual(len(answers[0]), 5)
                self.assertEqual(answers[0], answers[1], (search_type, query))
                self.assertEqual(answers[0], answers[2], (search_type, query))

        # -- the same with the vectors in Qdrant ------------------------------------------------
        job = three.client("bedrock-agent").start_ingestion_job(
            knowledgeBaseId="CLUSTERKB2", dataSourceId="CLUSTERDS2")["ingestionJob"]
        done = self.wait_job(one, job["ingestionJobId"], ds="CLUSTERDS2", kb="CLUSTERKB2")
        self.assertEqual((done["status"], done["statistics"]["numberOfNewDocumentsIndexed"]), ("COMPLETE", 12), done)
        self.wait_caught_up(self.replicas)
        for search_type in ("SEMANTIC", "HYBRID"):
            answers = self.retrieve_everywhere("coral reefs in region 5", search_type, self.replicas, kb="CLUSTERKB2")
            self.assertEqual(len(answers[0]), 5)
            self.assertEqual(answers[0], answers[1], search_type)
            self.assertEqual(answers[0], answers[2], search_type)

        # -- direct ingestion through one replica, found through another ------------------------
        memo = {"content": {"dataSourceType": "CUSTOM", "custom": {
            "customDocumentIdentifier": {"id": "memo-1"}, "sourceType": "IN_LINE",
            "inlineContent": {"type": "TEXT", "textContent": {
                "data": "The lighthouse keeper winds the clockwork lamp every evening at dusk."}}}}}
        details = one.client("bedrock-agent").ingest_knowledge_base_documents(
            knowledgeBaseId="CLUSTERKB2", dataSourceId="CUSTOMDS02", documents=[memo])["documentDetails"]
        self.assertEqual(details[0]["status"], "INDEXED", details)
        self.wait_caught_up(self.replicas)
        for search_type in ("SEMANTIC", "HYBRID"):
            top = three.client("bedrock-agent-runtime").retrieve(
                knowledgeBaseId="CLUSTERKB2", retrievalQuery={"text": "lighthouse lamp keeper"},
                retrievalConfiguration={"vectorSearchConfiguration": {
                    "numberOfResults": 1, "overrideSearchType": search_type}})["retrievalResults"][0]
            self.assertEqual(top["location"]["customDocumentLocation"]["id"], "memo-1", search_type)
        deleted = two.client("bedrock-agent").delete_knowledge_base_documents(
            knowledgeBaseId="CLUSTERKB2", dataSourceId="CUSTOMDS02",
            documentIdentifiers=[{"dataSourceType": "CUSTOM", "custom": {"id": "memo-1"}}])["documentDetails"]
        self.assertEqual(deleted[0]["status"], "DELETING")
        self.wait_caught_up(self.replicas)
        for search_type in ("SEMANTIC", "HYBRID"):
            top = three.client("bedrock-agent-runtime").retrieve(
                knowledgeBaseId="CLUSTERKB2", retrievalQuery={"text": "lighthouse lamp keeper"},
                retrievalConfiguration={"vectorSearchConfiguration": {
                    "numberOfResults": 1, "overrideSearchType": search_type}})["retrievalResults"]
            self.assertNotIn("customDocumentLocation", top[0]["location"], search_type)

        # -- a session started on one replica continues on another ------------------------------
        rag = {"type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
            "knowledgeBaseId": "CLUSTERKB1", "modelArn": "arn:aws:bedrock:us-east-1::foundation-model/cite"}}
        first = one.client("bedrock-agent-runtime").retrieve_and_generate(
            input={"text": "What about honey bees?"}, retrieveAndGenerateConfiguration=rag)
        second = three.client("bedrock-agent-runtime").retrieve_and_generate(
            input={"text": "And coral reefs?"}, sessionId=first["sessionId"], retrieveAndGenerateConfiguration=rag)
        self.assertEqual(second["sessionId"], first["sessionId"])
        messages = self.llm.requests("cite")[-1]["body"]["messages"]
        self.assertEqual([m["role"] for m in messages], ["system", "user", "assistant", "user"])
        self.assertEqual(messages[2]["content"], first["output"]["text"])

        # -- a knowledge base created through one is listed by another at once ------------------
        created = two.client("bedrock-agent").create_knowledge_base(
            name="made-on-two", roleArn="arn:aws:iam::123456789012:role/quarry",
            knowledgeBaseConfiguration={"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
                "embeddingModelArn": "arn:aws:bedrock:us-east-1::foundation-model/minilm"}})["knowledgeBase"]
        listed = three.client("bedrock-agent").list_knowledge_bases()["knowledgeBaseSummaries"]
        self.assertIn(created["knowledgeBaseId"], [k["knowledgeBaseId"] for k in listed])
        got = one.client("bedrock-agent").get_knowledge_base(knowledgeBaseId=created["knowledgeBaseId"])
        self.assertEqual(got["knowledgeBase"]["name"], "made-on-two")

        # -- a replica killed mid-job loses nothing ------------------------------------------------
        for i in range(60, 120):
            self.s3.client.put_object(Bucket=BUCKET, Key=f"reports/r{i:03d}.txt", Body=document(i))
        job = two.client("bedrock-agent").start_ingestion_job(
            knowledgeBaseId="CLUSTERKB1", dataSourceId="CLUSTERDS1")["ingestionJob"]
        deadline = time.time() + 120
        while time.time() < deadline:
            mine = [x for x in self.status()["replicas"] if x["name"] == "replica-3"]
            if mine and mine[0]["leases"] > 0:
                break
            time.sleep(0.1)
        else:
            self.fail("replica 3 never held a document")
        three.stop(signal.SIGKILL)
        done = self.wait_job(one, job["ingestionJobId"])
        self.assertEqual(done["status"], "COMPLETE", done)
        self.assertEqual(done["statistics"]["numberOfDocumentsScanned"], 120)
        self.assertEqual(done["statistics"]["numberOfNewDocumentsIndexed"], 60)
        self.assertEqual(done["statistics"]["numberOfDocumentsFailed"], 0)
        ids = sorted(row[0] for row in psql(self.db, "SELECT id FROM cluster_reports"))
        self.assertEqual(ids, self.single_node_chunk_ids())

        # -- a change event may arrive at any replica ---------------------------------------------
        self.s3.client.put_object(Bucket=BUCKET, Key="reports/late.txt", Body=document(500))
        event = {"version": "0", "source": "aws.s3", "detail-type": "Object Created",
                 "detail": {"bucket": {"name": BUCKET}, "object": {"key": "reports/late.txt"}}}
        req = urllib.request.Request(two.url + "/events", data=json.dumps(event).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "x-api-key": "events-key"})
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.loads(r.read())
        [started] = answer["ingestionJobs"]
        done = self.wait_job(one, started["ingestionJobId"])
        self.assertEqual(done["status"], "COMPLETE", done)
        self.assertEqual((done["statistics"]["numberOfDocumentsScanned"],
                          done["statistics"]["numberOfNewDocumentsIndexed"]), (1, 1))

        # -- a job started on one replica is stopped through another -----------------------------
        for i in range(30):
            self.s3.client.put_object(Bucket=BUCKET, Key=f"reports/r{i:03d}.txt", Body=document(i) + b" Revised.")
        job = one.client("bedrock-agent").start_ingestion_job(
            knowledgeBaseId="CLUSTERKB1", dataSourceId="CLUSTERDS1")["ingestionJob"]
        stopping = two.client("bedrock-agent").stop_ingestion_job(
            knowledgeBaseId="CLUSTERKB1", dataSourceId="CLUSTERDS1", ingestionJobId=job["ingestionJobId"])
        self.assertEqual(stopping["ingestionJob"]["status"], "STOPPING")
        stopped = self.wait_job(one, job["ingestionJobId"])
        self.assertEqual(stopped["status"], "STOPPED", stopped)
        self.assertLess(stopped["statistics"]["numberOfModifiedDocumentsIndexed"], 30)

        # -- a schedule fires once per cluster, not once per replica: one replica (the holder of
        # an advisory lock) fires every 2 s; were each replica firing on its own clock, starts
        # would come closer together than that.
        jobs = one.client("bedrock-agent").list_ingestion_jobs(
            knowledgeBaseId="CLUSTERKB1", dataSourceId="SCHEDULED1", maxResults=1000)["ingestionJobSummaries"]
        starts = sorted(j["startedAt"].timestamp() for j in jobs)
        self.assertGreater(len(starts), 2)
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        self.assertGreaterEqual(min(gaps), 1.5, f"scheduled jobs started {gaps} s apart")

        # -- a replica whose data directory is deleted catches up ----------------------------------
        one.stop()
        shutil.rmtree(os.path.join(one.dir, "data"))
        one.start()
        one.wait_ready()
        self.wait_caught_up([one, two])
        for search_type in ("SEMANTIC", "HYBRID"):
            answers = self.retrieve_everywhere("Report 77 on honey bees, region 77", search_type, [one, two])
            self.assertEqual(answers[0], answers[1], search_type)
        self.assertIn("s3://cluster-docs/reports/r077.txt", [uri for uri, _ in answers[0]])

    def single_node_chunk_ids(self):
        """The chunk ids one node makes of the same bucket (same knowledge base and data
        source ids), through `quarry sync` and `quarry inspect`."""
        work = tempfile.mkdtemp(prefix="quarry-single-")
        try:
            config = os.path.join(work, "knowledge-bases.toml")
            with open(config, "w") as f:
                f.write(f"""[server]
data_dir = "data"

[s3]
endpoint_url = "{self.s3.url}"
region = "us-east-1"

[models.minilm]
kind = "bert"
path = "{MODEL}"

[[knowledge_bases]]
id = "CLUSTERKB1"
name = "reports"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "CLUSTERDS1"
name = "bucket"
type = "s3"
bucket = "{BUCKET}"
""")
            env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
            subprocess.run([os.environ["QUARRY_BIN"], "--config", config, "sync", "reports"],
                           check=True, capture_output=True, env=env)
            out = subprocess.run([os.environ["QUARRY_BIN"], "--config", config, "inspect", "reports"],
                                 check=True, capture_output=True, env=env, text=True).stdout
            report = json.loads(out)
            return sorted(i for ids in report["documents"].values() for i in ids)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
