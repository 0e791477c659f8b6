"""Embedding on another server: a knowledge base whose model is `openai-embeddings` pointed
at a second real `quarry serve` (its `/v1/embeddings`, real model) finds what the in-process
model finds; TEI's protocol, batches and requests in flight; 429 retried after Retry-After; a
server that is down fails the job with a reason and loses nothing; and `/v1/embeddings`
itself, as OpenAI's clients call it."""
import base64
import json
import math
import os
import shutil
import struct
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from embed_server import EmbedServer
from harness import FIXTURES, KEY_ID, MODEL, SECRET, Server, free_port
from sigv4 import sign

EMBED_KEY = "sk-quarry-embeddings-test"
QUERIES = ["How many vacation days do new employees get?", "How long does the battery last?",
           "How much does the Pro plan cost per month?", "Can I work from another country?"]


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def post(url, body, headers=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


class RemoteEmbeddings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.embedder = Server(extra_server_toml='embeddings_api_key_env = "EMBED_KEY"', env={"EMBED_KEY": EMBED_KEY})
        cls.tei = EmbedServer()
        cls.flaky = EmbedServer()
        cls.flaky.set(mode="flaky")
        nowhere = free_port()
        kbs = ""
        for kb, ds, model, folder in [("REMOTEKB01", "REMOTEDS01", "remote-minilm", "docs"),
                                      ("TEIKB00001", "TEIDS00001", "tei", "tei-docs"),
                                      ("FLAKYKB001", "FLAKYDS001", "flaky", "docs"),
                                      ("NOWHEREKB1", "NOWHEREDS1", "nowhere", "docs"),
                                      ("FAILOVERK1", "FAILOVERD1", "failover", "docs")]:
            kbs += f'''
[[knowledge_bases]]
id = "{kb}"
name = "{kb.lower()}"
embedding_model = "{model}"

[[knowledge_bases.data_sources]]
id = "{ds}"
name = "docs"
type = "local"
path = "{folder}"
'''
        cls.server = Server(env={"EMBED_KEY": EMBED_KEY}, extra_toml=f'''
[models.remote-minilm]
kind = "openai-embeddings"
base_url = "{cls.embedder.url}/v1"
model = "minilm"
api_key_env = "EMBED_KEY"
dimensions = 384
tokenizer = "{MODEL}/tokenizer.json"
max_tokens = 254

[models.tei]
kind = "tei"
base_url = "{cls.tei.url}"
dimensions = 64
batch_size = 2
max_concurrent = 3
max_retries = 1

[models.flaky]
kind = "openai-embeddings"
base_url = "{cls.flaky.url}/v1"
model = "flaky"
dimensions = 64

[models.failover]
kind = "tei"
base_urls = ["http://127.0.0.1:{nowhere}", "{cls.tei.url}"]
dimensions = 64

[models.nowhere]
kind = "openai-embeddings"
base_url = "http://127.0.0.1:{nowhere}/v1"
dimensions = 64
max_retries = 1
{kbs}''')
        shutil.copytree(FIXTURES, os.path.join(cls.server.dir, "tei-docs"))
        # A document of many chunks, so one document's batches go out side by side.
        with open(os.path.join(cls.server.dir, "tei-docs", "maintenance-log.txt"), "w") as f:
            f.write(" ".join(f"Robot unit {i} passed inspection step {i % 9} in hall {i % 4}." for i in range(1200)))

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.embedder.close()
        cls.tei.close()
        cls.flaky.close()

    def retrieve(self, kb, query, n=5):
        return self.server.runtime().retrieve(
            knowledgeBaseId=kb, retrievalQuery={"text": query},
            retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": n}})["retrievalResults"]

    def test_a_quarry_embedding_server_finds_what_the_in_process_model_finds(self):
        for kb, ds in [("DEMOKB0001", "DEMODS0001"), ("REMOTEKB01", "REMOTEDS01")]:
            job = self.server.sync(kb, ds)
            self.assertEqual(job["status"], "COMPLETE", job)
            self.assertEqual(job["statistics"]["numberOfDocumentsFailed"], 0, job)
        for query in QUERIES:
            local, remote = self.retrieve("DEMOKB0001", query), self.retrieve("REMOTEKB01", query)
            self.assertEqual([r["content"]["text"] for r in remote], [r["content"]["text"] for r in local], query)
            for a, b in zip(local, remote):
                self.assertAlmostEqual(a["score"], b["score"], delta=1e-4)

        # The vectors themselves: the embedding server's against this process's own model.
        status, answer = post(self.embedder.url + "/v1/embeddings", {"model": "minilm", "input": QUERIES},
                              {"authorization": f"Bearer {EMBED_KEY}"})
        self.assertEqual(status, 200, answer)
        local = subprocess.run([os.environ["QUARRY_BIN"], "--config", os.path.join(self.server.dir, "knowledge-bases.toml"),
                                "embed", "--model", "minilm"], input="\n".join(QUERIES).encode(),
                               capture_output=True, check=True).stdout.decode().splitlines()
        for line, item in zip(local, sorted(answer["data"], key=lambda d: d["index"])):
            self.assertGreaterEqual(cosine(json.loads(line), item["embedding"]), 0.9999)

    def test_tei_batches_in_flight(self):
        self.tei.set(mode="ok", delay=0.2)
        job = self.server.sync("TEIKB00001", "TEIDS00001")
        self.assertEqual(job["status"], "COMPLETE", job)
        sent = self.tei.requests("/embed")
        self.assertTrue(sent)
        self.assertTrue(all(r["body"]["truncate"] is True and 1 <= len(r["body"]["inputs"]) <= 2 for r in sent))
        self.assertGreater(self.tei.max_in_flight(), 1)
        self.assertLessEqual(self.tei.max_in_flight(), 3)
        hits = self.retrieve("TEIKB00001", "How many vacation days do new employees get?")
        self.assertIn("vacation", hits[0]["content"]["text"].lower())

        # Down for good: the job fails with the server and its answer named; nothing indexed is lost.
        before = {r["content"]["text"] for r in self.retrieve("TEIKB00001", "vacation battery pricing", n=100)}
        with open(os.path.join(self.server.dir, "tei-docs", "handbook", "vacation-policy.md"), "a") as f:
            f.write("\n\nVolunteering days: two a year, paid.\n")
        self.tei.set(mode="down", delay=0)
        job = self.server.sync("TEIKB00001", "TEIDS00001")
        self.assertEqual(job["status"], "FAILED", job)
        reason = " ".join(job.get("failureReasons", []))
        self.assertIn(self.tei.url, reason)
        self.assertIn("503", reason)
        # Queries need the server too: a 424, not an internal error.
        rt = self.server.runtime()
        with self.assertRaises(rt.exceptions.DependencyFailedException) as e:
            self.retrieve("TEIKB00001", "vacation")
        self.assertIn(self.tei.url, str(e.exception))
        # Back up: everything indexed before is still there, and the next sync picks the
        # change up.
        self.tei.set(mode="ok")
        after = {r["content"]["text"] for r in self.retrieve("TEIKB00001", "vacation battery pricing", n=100)}
        self.assertEqual(after, before)
        job = self.server.sync("TEIKB00001", "TEIDS00001")
        self.assertEqual(job["status"], "COMPLETE", job)
        self.assertEqual(job["statistics"]["numberOfModifiedDocumentsIndexed"], 1, job)

    def test_429_is_retried_after_the_servers_retry_after(self):
        job = self.server.sync("FLAKYKB001", "FLAKYDS001")
        self.assertEqual(job["status"], "COMPLETE", job)
        self.assertEqual(job["statistics"]["numberOfDocumentsFailed"], 0, job)
        first, second = self.flaky.requests("/v1/embeddings")[:2]
        self.assertEqual(first["body"]["input"], second["body"]["input"])
        self.assertGreaterEqual(second["time"] - first["time"], 0.9)

    def test_with_several_servers_a_dead_one_is_passed_over(self):
        before = len(self.tei.requests("/embed"))
        job = self.server.sync("FAILOVERK1", "FAILOVERD1")
        self.assertEqual(job["status"], "COMPLETE", job)
        self.assertEqual(job["statistics"]["numberOfDocumentsFailed"], 0, job)
        self.assertGreater(len(self.tei.requests("/embed")), before)
        hits = self.retrieve("FAILOVERK1", "How many vacation days do new employees get?")
        self.assertIn("vacation", hits[0]["content"]["text"].lower())

    def test_a_server_that_is_not_there_fails_the_job_with_a_reason(self):
        job = self.server.sync("NOWHEREKB1", "NOWHEREDS1")
        self.assertEqual(job["status"], "FAILED", job)
        reason = " ".join(job.get("failureReasons", []))
        self.assertIn("failed after 2 attempts", reason)

    def test_the_embeddings_endpoint_speaks_openais_protocol(self):
        url = self.embedder.url + "/v1/embeddings"
        bearer = {"authorization": f"Bearer {EMBED_KEY}"}
        status, one = post(url, {"model": "minilm", "input": "hello"}, bearer)
        self.assertEqual(status, 200, one)
        self.assertEqual(one["object"], "list")
        self.assertEqual(len(one["data"][0]["embedding"]), 384)
        self.assertGreater(one["usage"]["prompt_tokens"], 0)
        status, b64 = post(url, {"model": "minilm", "input": ["hello"], "encoding_format": "base64"}, bearer)
        self.assertEqual(status, 200, b64)
        decoded = struct.unpack("<384f", base64.b64decode(b64["data"][0]["embedding"]))
        self.assertGreater(cosine(decoded, one["data"][0]["embedding"]), 0.99999)
        # Signed with SigV4 instead of the key.
        body = json.dumps({"model": "minilm", "input": ["hello"]}).encode()
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers=sign(url, body, KEY_ID, SECRET))
        with urllib.request.urlopen(req, timeout=30) as r:
            self.assertEqual(r.status, 200)
        # Refusals, in OpenAI's shape.
        for request, code, param in [({"model": "nope", "input": "x"}, 404, "model"),
                                     ({"model": "minilm", "input": [[1, 2, 3]]}, 400, "input"),
                                     ({"model": "minilm", "input": ""}, 400, "input"),
                                     ({"model": "minilm", "input": "x", "dimensions": 16}, 400, "dimensions"),
                                     ({"model": "minilm", "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
                                     ({"model": "minilm", "input": "x", "stream": True}, 400, "body")]:
            status, answer = post(url, request, bearer)
            self.assertEqual(status, code, (request, answer))
            self.assertEqual(answer["error"]["param"], param, answer)
        status, _ = post(url, {"model": "minilm", "input": "x"}, {"authorization": "Bearer wrong"})
        self.assertEqual(status, 403)
        status, _ = post(url, {"model": "minilm", "input": "x"})
        self.assertEqual(status, 403)


if __name__ == "__main__":
    unittest.main()
