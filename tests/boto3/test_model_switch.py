"""Switching a knowledge base's embedding model without downtime, through boto3 against a real
`quarry serve`: UpdateKnowledgeBase names a new model (an embedding server speaking TEI's
protocol, with 64-dimensional vectors where MiniLM's have 384); the new index is built in the
background from the stored chunk texts while Retrieve keeps answering from the old one (not
one call fails), documents written during the build are in the new index and a deleted one is
not, and the swap leaves every chunk embedded by the new model. A build killed with SIGKILL
resumes at the next start, and `quarry gc` removes the replaced index."""
import json
import os
import signal
import subprocess
import threading
import time
import unittest

from embed_server import EmbedServer
from harness import KEY_ID, SECRET, Server
from sigv4 import sign

MINILM = "arn:aws:bedrock:us-east-1::foundation-model/minilm"
HASHED = "arn:aws:bedrock:us-east-1::foundation-model/hashed"
ROLE = "arn:aws:iam::123456789012:role/kb"
TOPICS = ["glacier hiking", "sourdough baking", "violin repair", "orchid watering", "tide tables",
          "bicycle gears", "beekeeping", "pottery glazes", "chess openings", "solar panels"]


def inline_text(doc_id, text):
    return {"content": {"dataSourceType": "CUSTOM", "custom": {
        "customDocumentIdentifier": {"id": doc_id}, "sourceType": "IN_LINE",
        "inlineContent": {"type": "TEXT", "textContent": {"data": text}}}}}


def note(i):
    topic = TOPICS[i % len(TOPICS)]
    return f"Note {i} about {topic}: practical advice on {topic} number {i}, written for the club."


def vector_config(arn):
    return {"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": arn}}


class ModelSwitch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.embed = EmbedServer()
        cls.server = Server(extra_toml=f'''
[models.hashed]
kind = "tei"
base_url = "{cls.embed.url}"
dimensions = 64
batch_size = 8
max_concurrent = 1
''')

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.embed.close()

    def summary(self, kb_id):
        path = f"/quarry/knowledgebases/{kb_id}/summary"
        status, _, body = self.server.raw("GET", path, headers=sign(self.server.url + path, b"", KEY_ID, SECRET, method="GET"))
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def retrieve(self, kb_id, text, n=3):
        return self.server.runtime().retrieve(
            knowledgeBaseId=kb_id, retrievalQuery={"text": text},
            retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": n}})["retrievalResults"]

    def make_kb(self, name, docs):
        ag = self.server.agent()
        kb_id = ag.create_knowledge_base(name=name, roleArn=ROLE, knowledgeBaseConfiguration=vector_config(MINILM))["knowledgeBase"]["knowledgeBaseId"]
        ds_id = ag.create_data_source(knowledgeBaseId=kb_id, name="pushed",
                                      dataSourceConfiguration={"type": "CUSTOM"})["dataSource"]["dataSourceId"]
        for start in range(0, docs, 10):
            details = ag.ingest_knowledge_base_documents(knowledgeBaseId=kb_id, dataSourceId=ds_id, documents=[
                inline_text(f"note-{i}", note(i)) for i in range(start, min(start + 10, docs))])["documentDetails"]
            self.assertEqual({d["status"] for d in details}, {"INDEXED"}, details)
        return kb_id, ds_id

    def switch(self, kb_id, arn):
        return self.server.agent().update_knowledge_base(
            knowledgeBaseId=kb_id, name=self.server.agent().get_knowledge_base(knowledgeBaseId=kb_id)["knowledgeBase"]["name"],
            roleArn=ROLE, knowledgeBaseConfiguration=vector_config(arn))["knowledgeBase"]

    def wait_for_generation(self, kb_id, generation, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            index = self.summary(kb_id)["index"]
            if index["generation"] == generation:
                return index
            time.sleep(0.3)
        self.fail(f"generation {generation} did not serve in {timeout}s: {self.summary(kb_id)}")

    def test_a_switch_under_steady_retrieves_fails_none_and_embeds_every_chunk_anew(self):
        kb_id, ds_id = self.make_kb("switching", 120)
        before = self.retrieve(kb_id, "how do I repair a violin")
        self.assertIn("violin", before[0]["content"]["text"])

        failures, answers, stop = [], [], threading.Event()

        def steady():
            runtime = self.server.runtime()
            while not stop.is_set():
                try:
                    r = runtime.retrieve(knowledgeBaseId=kb_id, retrievalQuery={"text": "advice on beekeeping"},
                                         retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 3}})
                    answers.append(r["retrievalResults"])
                except Exception as e:  # noqa: BLE001 — every failure is the test's finding
                    failures.append(repr(e))
        threads = [threading.Thread(target=steady) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            self.embed.set(delay=0.5)  # slow enough that the build is watched and written to
            updated = self.switch(kb_id, HASHED)
            self.assertEqual(updated["status"], "UPDATING")
            self.assertEqual(updated["knowledgeBaseConfiguration"]["vectorKnowledgeBaseConfiguration"]["embeddingModelArn"], HASHED)
            deadline = time.time() + 60
            while time.time() < deadline:
                switch = self.summary(kb_id)["index"].get("switch") or {}
                if (switch.get("chunksDone") or 0) > 0:
                    break
                time.sleep(0.1)
            self.assertEqual(switch["model"], "hashed")
            self.assertLess(switch["chunksDone"], switch["chunksTotal"], "the build is watched while it runs")
            self.assertEqual(self.summary(kb_id)["index"]["generation"], 0, "the old index serves during the build")
            # Written to the serving index during the build: replayed into the new one.
            ag = self.server.agent()
            ag.ingest_knowledge_base_documents(knowledgeBaseId=kb_id, dataSourceId=ds_id, documents=[
                inline_text("late-arrival", "The lighthouse keeper logs foghorn maintenance every Tuesday at dawn.")])
            ag.delete_knowledge_base_documents(knowledgeBaseId=kb_id, dataSourceId=ds_id, documentIdentifiers=[
                {"dataSourceType": "CUSTOM", "custom": {"id": "note-3"}}])
            self.embed.set(delay=0.0)
            index = self.wait_for_generation(kb_id, 1)
            time.sleep(1.0)  # Retrieves go on after the swap too
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(failures, [], "no Retrieve failed during the switch")
        self.assertGreater(len(answers), 20)
        self.assertTrue(all(a and "beekeeping" in a[0]["content"]["text"] for a in answers),
                        "every answer, from either index, found the beekeeping notes")
        self.assertEqual(index["model"], "hashed")
        self.assertEqual(index["lastSwitch"]["from"], {"number": 0, "model": "minilm"})
        self.assertEqual(index["lastSwitch"]["chunks"], 120)  # 120 - note-3 + late-arrival
        self.assertEqual(self.server.agent().get_knowledge_base(knowledgeBaseId=kb_id)["knowledgeBase"]["status"], "ACTIVE")

        # Every stored chunk's text went through the new model; queries now do too.
        embedded = {t for r in self.embed.requests("/embed") for t in r["body"]["inputs"]}
        self.assertIn(note(0), embedded)
        self.assertIn("The lighthouse keeper logs foghorn maintenance every Tuesday at dawn.", embedded)
        asked = len(self.embed.requests("/embed"))
        top = self.retrieve(kb_id, "foghorn maintenance by the lighthouse keeper")
        self.assertEqual(top[0]["location"]["customDocumentLocation"]["id"], "late-arrival")
        self.assertGreater(len(self.embed.requests("/embed")), asked, "the query was embedded by the new model")
        ids = {r["location"]["customDocumentLocation"]["id"] for r in self.retrieve(kb_id, note(3), n=20)}
        self.assertNotIn("note-3", ids, "a document deleted during the build is not in the new index")
        self.assertIn("note-13", ids)

    def test_b_a_killed_build_resumes_at_the_next_start_and_gc_removes_the_old_index(self):
        kb_id, _ = self.make_kb("resuming", 150)
        self.embed.set(delay=0.5)
        self.switch(kb_id, HASHED)
        deadline = time.time() + 60
        # Killed after the first batch of the build was stored, during the second.
        while (self.summary(kb_id)["index"].get("switch") or {}).get("chunksDone", 0) == 0:
            self.assertLess(time.time(), deadline, "the build starts")
            time.sleep(0.1)
        self.server.stop(sig=signal.SIGKILL)
        self.embed.set(delay=0.0)
        embedded_before = len(self.embed.requests("/embed"))
        self.server.start()
        # Still the old model until the swap; then the new one.
        index = self.wait_for_generation(kb_id, 1)
        self.assertEqual(index["lastSwitch"]["chunks"], 150)
        resumed = [t for r in self.embed.requests("/embed")[embedded_before:] for t in r["body"]["inputs"]]
        self.assertLessEqual(len(resumed), 150 - 64, "the resumed build embeds what was left, not everything again")
        self.assertIn("beekeeping", self.retrieve(kb_id, "beekeeping advice")[0]["content"]["text"])
        self.assertEqual([g["number"] for g in index["retiredGenerations"]], [0])

        self.server.stop()
        kb_dir = os.path.join(self.server.dir, "data", kb_id)
        self.assertTrue(os.path.isdir(os.path.join(kb_dir, "hnsw")))
        out = subprocess.run([os.environ["QUARRY_BIN"], "--config", os.path.join(self.server.dir, "knowledge-bases.toml"),
                              "gc", kb_id], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("removed generation 0 (minilm)", out.stdout)
        self.assertFalse(os.path.isdir(os.path.join(kb_dir, "hnsw")))
        self.server.start()
        self.assertIn("beekeeping", self.retrieve(kb_id, "beekeeping advice")[0]["content"]["text"])
        self.assertEqual(self.summary(kb_id)["index"]["retiredGenerations"], [])

    def test_c_a_model_changed_in_the_configuration_is_switched_to_by_quarry_switch(self):
        docs = os.path.join(self.server.dir, "docs", "handbook")
        # A document whose metadata is embedded with its text (includeForEmbedding).
        with open(os.path.join(docs, "badges.md"), "w") as f:
            f.write("Visitor badges are printed at the front desk and returned at the end of the day.")
        with open(os.path.join(docs, "badges.md.metadata.json"), "w") as f:
            json.dump({"metadataAttributes": {"team": {"value": {"type": "STRING", "stringValue": "security"},
                                                       "includeForEmbedding": True}}}, f)
        with open(os.path.join(self.server.dir, "demo-set.jsonl"), "w") as f:
            f.write(json.dumps({"query": "How many vacation days do new employees get?",
                                "documents": ["handbook/vacation-policy.md"]}) + "\n")
            f.write(json.dumps({"query": "Can I work from another country?",
                                "documents": ["handbook/remote-work.txt"]}) + "\n")
        self.server.sync("DEMOKB0001", "DEMODS0001")
        self.server.stop()
        config = os.path.join(self.server.dir, "knowledge-bases.toml")
        with open(config) as f:
            text = f.read()
        demo = text.index('id = "DEMOKB0001"')
        at = text.index('embedding_model = "minilm"', demo)
        with open(config, "w") as f:
            f.write(text[:at] + 'embedding_model = "hashed"\nregression = { queries = "demo-set.jsonl", k = 3 }'
                    + text[at + len('embedding_model = "minilm"'):])
        out = subprocess.run([os.environ["QUARRY_BIN"], "--config", config, "switch", "demo"],
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("switching demo from minilm to hashed (generation 1)", out.stderr)
        self.assertRegex(out.stdout, r"demo now serves generation 1 \(hashed\): \d+ chunks embedded again; "
                                     r"generation 0 \(minilm\) is kept until `quarry gc demo`")
        self.assertRegex(out.stdout, r"regression set: recall [0-9.]+ \(was 1.000\), nDCG@10 [0-9.]+ \(was [0-9.]+\)")
        again = subprocess.run([os.environ["QUARRY_BIN"], "--config", config, "switch", "demo"],
                               capture_output=True, text=True, timeout=120)
        self.assertIn("nothing to switch", again.stdout)
        self.server.start()
        index = self.summary("DEMOKB0001")["index"]
        self.assertEqual((index["generation"], index["model"]), (1, "hashed"))
        self.assertEqual(index["lastSwitch"]["documentsToEmbedAgain"], 1)
        self.assertEqual(index["lastSwitch"]["regression"]["old"]["recall"], 1.0)
        asked = len(self.embed.requests("/embed"))
        top = self.retrieve("DEMOKB0001", "vacation days for new employees")
        self.assertGreater(len(self.embed.requests("/embed")), asked)
        self.assertTrue(top, "the switched index answers")
        # A sync after the switch writes to the new index with the new model.
        with open(os.path.join(self.server.dir, "docs", "parking.md"), "w") as f:
            f.write("# Parking\n\nStaff park in the north garage; visitors use level two of the south garage.")
        job = self.server.sync("DEMOKB0001", "DEMODS0001")
        self.assertEqual(job["status"], "COMPLETE", job)
        self.assertEqual(job["statistics"]["numberOfNewDocumentsIndexed"], 1)
        # ... and embeds the document with embedded metadata again, with its metadata.
        self.assertEqual(job["statistics"]["numberOfModifiedDocumentsIndexed"], 1)
        embedded = [t for r in self.embed.requests("/embed") for t in r["body"]["inputs"]]
        self.assertIn("team: security\nVisitor badges are printed at the front desk and returned at the end of the day.", embedded)
        self.assertIn("garage", self.retrieve("DEMOKB0001", "where do visitors park in the garage")[0]["content"]["text"])


if __name__ == "__main__":
    unittest.main()
