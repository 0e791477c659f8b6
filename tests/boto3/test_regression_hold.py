"""The regression guard's hold, through boto3 against a real `quarry serve`: a knowledge base
whose regression set has `hold = true` keeps answering from its index as it was before a sync
that broke a query of the set (while the live index has the change), through later syncs that
still regress, until a person runs `quarry accept KB JOB`; then the live index answers."""
import json
import os
import subprocess
import time
import unittest

from harness import KEY_ID, SECRET, Server
from sigv4 import sign

DOCS = {
    "lighthouse.md": ("The lighthouse keeper climbs 120 steps each evening to light the lamp that warns ships off the reef.",
                      "who lights the lamp in the lighthouse"),
    "bakery.md": ("The bakery proofs its sourdough overnight and bakes rye loaves in a wood-fired oven before dawn.",
                  "when is the sourdough baked"),
    "kiln.md": ("Stoneware is fired in the kiln at 1280 degrees; glazes melt into glass as the kiln cools slowly.",
                "how hot is the stoneware kiln"),
    "orchard.md": ("The orchard grows twelve apple varieties, picked by hand in September and pressed into cider.",
                   "which apples grow in the orchard"),
}
LIGHTHOUSE = "who lights the lamp in the lighthouse"


class RegressionHold(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_toml='''
[[knowledge_bases]]
id = "GUARDKB001"
name = "guarded"
embedding_model = "minilm"
regression = { queries = "regression.jsonl", k = 1, margin = 0.1, hold = true }

[[knowledge_bases.data_sources]]
id = "GUARDDS001"
name = "pages"
type = "local"
path = "guarded"
''')
        d = cls.server.dir
        os.makedirs(os.path.join(d, "guarded"))
        for key, (text, _) in DOCS.items():
            with open(os.path.join(d, "guarded", key), "w") as f:
                f.write(text)
        with open(os.path.join(d, "regression.jsonl"), "w") as f:
            for key, (_, query) in DOCS.items():
                f.write(json.dumps({"query": query, "documents": [key]}) + "\n")

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def index(self):
        path = "/quarry/knowledgebases/GUARDKB001/summary"
        status, _, body = self.server.raw("GET", path, headers=sign(self.server.url + path, b"", KEY_ID, SECRET, method="GET"))
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def judged(self, job):
        """The hold once the job has been judged (a job reads COMPLETE a moment before its
        regression set is scored): None, or held for this job after a regression."""
        deadline = time.time() + 30
        while True:
            held = self.index()["index"].get("held")
            if held is None or (held["jobId"] == job["ingestionJobId"] and held["regressed"]):
                return held
            self.assertLess(time.time(), deadline, f"job {job['ingestionJobId']} is judged")
            time.sleep(0.1)

    def top(self, text):
        results = self.server.runtime().retrieve(
            knowledgeBaseId="GUARDKB001", retrievalQuery={"text": text},
            retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 1}})["retrievalResults"]
        return results[0]["metadata"]["x-amz-bedrock-kb-source-uri"].rsplit("/", 1)[-1] if results else None

    def quarry(self, *args):
        out = subprocess.run([os.environ["QUARRY_BIN"], "--config", os.path.join(self.server.dir, "knowledge-bases.toml"), *args],
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_a_regressed_sync_is_held_until_a_person_accepts_it(self):
        first = self.server.sync("GUARDKB001", "GUARDDS001")
        self.assertEqual(first["status"], "COMPLETE", first)
        self.assertIsNone(self.judged(first), "a sync that does not regress is not held")
        self.assertEqual(self.top(LIGHTHOUSE), "lighthouse.md")

        # The lighthouse page is taken down: its query breaks, so the sync is held.
        os.remove(os.path.join(self.server.dir, "guarded", "lighthouse.md"))
        second = self.server.sync("GUARDKB001", "GUARDDS001")
        self.assertEqual(second["status"], "COMPLETE", second)
        self.assertEqual(second["statistics"]["numberOfDocumentsDeleted"], 1)
        held = self.judged(second)
        self.assertEqual((held["jobId"], held["regressed"]), (second["ingestionJobId"], True))
        self.assertEqual(self.top(LIGHTHOUSE), "lighthouse.md", "the index as it was before the sync answers")
        live = json.loads(self.quarry("regression", "guarded", "--json"))
        self.assertEqual(live["recallAtK"], 0.75, "the live index has the change")

        # A later sync that still regresses: still held, so its new page is not served yet.
        with open(os.path.join(self.server.dir, "guarded", "ferry.md"), "w") as f:
            f.write("The island ferry leaves the harbour at seven and returns at noon on weekdays.")
        third = self.server.sync("GUARDKB001", "GUARDDS001")
        self.assertEqual(third["statistics"]["numberOfNewDocumentsIndexed"], 1)
        self.assertEqual(self.judged(third)["jobId"], third["ingestionJobId"])
        self.assertEqual(self.top(LIGHTHOUSE), "lighthouse.md")
        self.assertNotEqual(self.top("when does the island ferry leave the harbour"), "ferry.md")

        # Accepting another job than the held one says so and changes nothing.
        out = self.quarry("accept", "guarded", second["ingestionJobId"])
        self.assertIn(f"still held for job {third['ingestionJobId']}", out)
        out = self.quarry("accept", "guarded", third["ingestionJobId"])
        self.assertIn("the live index serves", out)
        deadline = time.time() + 10
        while self.top(LIGHTHOUSE) == "lighthouse.md":
            self.assertLess(time.time(), deadline, "the server follows the acceptance")
            time.sleep(0.2)
        self.assertEqual(self.top("when does the island ferry leave the harbour"), "ferry.md")
        self.assertIsNone(self.index()["index"].get("held"))

        # The next sync compares with the accepted job and is not held.
        fourth = self.server.sync("GUARDKB001", "GUARDDS001")
        self.assertEqual(fourth["status"], "COMPLETE", fourth)
        self.assertIsNone(self.judged(fourth))


if __name__ == "__main__":
    unittest.main()
