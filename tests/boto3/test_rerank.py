"""Reranking through the real AWS SDK for Python: the Rerank operation, and
rerankingConfiguration in Retrieve and RetrieveAndGenerate, with a `rerank-api` model served
by `rerank_server.py` (a real HTTP server speaking the common /rerank protocol)."""
import json
import os
import re
import subprocess
import tempfile
import unittest

import botocore.exceptions

from harness import MODEL, Server
from openai_server import OpenAiServer
from rerank_server import RerankServer

ARN = "arn:aws:bedrock:us-east-1::foundation-model/{}"
QUERY = "How many vacation days do new employees get?"


def reranking(model="overlap", n=None, metadata=None):
    bedrock = {"modelConfiguration": {"modelArn": ARN.format(model)}}
    if n:
        bedrock["numberOfRerankedResults"] = n
    if metadata:
        bedrock["metadataConfiguration"] = metadata
    return {"type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": bedrock}


class Rerank(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.reranker = RerankServer()
        cls.llm = OpenAiServer()
        models = ""
        for name in ("overlap", "reverse", "fail"):
            models += f'''
[models."{name}"]
kind = "rerank-api"
base_url = "{cls.reranker.url}"
model = "{name}"
api_key_env = "TEST_RERANK_KEY"
max_retries = 1
'''
        models += f'''
[models.cite]
kind = "openai"
base_url = "{cls.llm.url}"
model = "cite"
'''
        cls.server = Server(extra_toml=models, env={"TEST_RERANK_KEY": "rk-test"})
        job = cls.server.sync("DEMOKB0001", "DEMODS0001")
        assert job["status"] == "COMPLETE", job
        cls.rt = cls.server.runtime()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.reranker.close()
        cls.llm.close()

    def last_request(self):
        return self.reranker.requests()[-1]

    def retrieve(self, k=5, **config):
        vector = {"numberOfResults": k, **config}
        return self.rt.retrieve(knowledgeBaseId="DEMOKB0001", retrievalQuery={"text": QUERY},
                                retrievalConfiguration={"vectorSearchConfiguration": vector})["retrievalResults"]

    def test_the_rerank_operation_returns_the_servers_order_and_scores(self):
        docs = ["Bread is baked at dawn.", "New employees get vacation days.", "Vacation days for new employees: 20."]
        out = self.rt.rerank(
            queries=[{"type": "TEXT", "textQuery": {"text": QUERY}}],
            sources=[{"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": d}}}
                     for d in docs] + [{"type": "INLINE", "inlineDocumentSource": {
                         "type": "JSON", "jsonDocument": {"title": "vacation", "days": 20}}}],
            rerankingConfiguration={"type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": {
                "modelConfiguration": {"modelArn": ARN.format("overlap")}, "numberOfResults": 3}})
        sent = self.last_request()
        self.assertEqual(sent["auth"], "Bearer rk-test")
        self.assertEqual(sent["body"]["query"], QUERY)
        self.assertEqual(sent["body"]["top_n"], 3)
        self.assertEqual(sent["body"]["documents"][:3], docs)
        self.assertEqual(len(out["results"]), 3)
        scores = [r["relevanceScore"] for r in out["results"]]
        self.assertEqual(scores, sorted(scores, reverse=True))
        # The server scores by shared words: 5 of 8 for docs[1], 4 for docs[2], 2 for the JSON one.
        self.assertEqual([r["index"] for r in out["results"]], [1, 2, 3])
        self.assertEqual(out["results"][0]["document"], {"type": "TEXT", "textDocument": {"text": docs[1]}})
        self.assertEqual(out["results"][2]["document"], {"type": "JSON", "jsonDocument": {"title": "vacation", "days": 20}})

    def test_retrieve_reranks_its_candidates_with_the_models_scores(self):
        plain = self.retrieve(k=5)
        reranked = self.retrieve(k=5, rerankingConfiguration=reranking(n=3))
        self.assertEqual(len(reranked), 3)
        sent = self.last_request()["body"]
        self.assertEqual(sent["query"], QUERY)
        self.assertEqual(sent["documents"], [r["content"]["text"] for r in plain])
        self.assertEqual(sent["top_n"], 3)
        # The model's order and scores, recomputed here the way the server computes them.
        import rerank_server
        expected = sorted(((round(len(rerank_server.words(QUERY) & rerank_server.words(d)) / len(rerank_server.words(QUERY)) + i * 1e-4, 6), i)
                           for i, d in enumerate(sent["documents"])), reverse=True)[:3]
        self.assertEqual([r["content"]["text"] for r in reranked], [sent["documents"][i] for _, i in expected])
        for r, (score, _) in zip(reranked, expected):
            self.assertAlmostEqual(r["score"], score, places=5)

    def test_metadata_selection_decides_what_the_model_sees(self):
        self.retrieve(k=3, rerankingConfiguration=reranking())
        self.assertFalse(any("department:" in d for d in self.last_request()["body"]["documents"]))
        self.retrieve(k=3, rerankingConfiguration=reranking(metadata={"selectionMode": "ALL"}))
        docs = self.last_request()["body"]["documents"]
        self.assertTrue(any("\ndepartment: hr" in d for d in docs), docs)
        self.assertTrue(any("\nyear: " in d for d in docs), docs)
        self.retrieve(k=3, rerankingConfiguration=reranking(metadata={
            "selectionMode": "SELECTIVE", "selectiveModeConfiguration": {"fieldsToInclude": [{"fieldName": "department"}]}}))
        docs = self.last_request()["body"]["documents"]
        self.assertTrue(any("\ndepartment: hr" in d for d in docs))
        self.assertFalse(any("\nyear: " in d for d in docs))
        self.retrieve(k=3, rerankingConfiguration=reranking(metadata={
            "selectionMode": "SELECTIVE", "selectiveModeConfiguration": {"fieldsToExclude": [{"fieldName": "department"}]}}))
        docs = self.last_request()["body"]["documents"]
        self.assertFalse(any("\ndepartment:" in d for d in docs))
        self.assertTrue(any("\nyear: " in d for d in docs))

    def test_bad_configurations_and_a_failing_model_are_clear_errors(self):
        with self.assertRaises(self.rt.exceptions.ValidationException) as e:
            self.retrieve(rerankingConfiguration=reranking(model="nope"))
        self.assertIn("nope", str(e.exception))
        bad = reranking()
        bad["bedrockRerankingConfiguration"]["modelConfiguration"]["additionalModelRequestFields"] = {"x": 1}
        with self.assertRaises(self.rt.exceptions.ValidationException) as e:
            self.retrieve(rerankingConfiguration=bad)
        self.assertIn("additionalModelRequestFields", str(e.exception))
        with self.assertRaises(self.rt.exceptions.ValidationException) as e:
            self.retrieve(rerankingConfiguration=reranking(metadata={"selectionMode": "SELECTIVE"}))
        self.assertIn("selectiveModeConfiguration", str(e.exception))
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.retrieve(rerankingConfiguration=reranking(model="fail"))
        self.assertEqual(e.exception.response["Error"]["Code"], "DependencyFailedException")
        self.assertIn("HTTP 500", str(e.exception))

    def test_retrieve_and_generate_answers_from_the_reranked_passages(self):
        config = {"type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
            "knowledgeBaseId": "DEMOKB0001", "modelArn": ARN.format("cite"),
            "retrievalConfiguration": {"vectorSearchConfiguration": {
                "numberOfResults": 5, "rerankingConfiguration": reranking(n=2)}}}}
        out = self.rt.retrieve_and_generate(input={"text": QUERY}, retrieveAndGenerateConfiguration=config)
        sent = self.last_request()["body"]
        self.assertEqual(len(sent["documents"]), 5)
        prompt = self.llm.requests("cite")[-1]["body"]["messages"][0]["content"]
        numbered = re.findall(r"^\[(\d+)\] ", prompt, flags=re.M)
        self.assertEqual(numbered, ["1", "2"], "only the two reranked passages reach the prompt")
        self.assertTrue(out["citations"])


if __name__ == "__main__":
    unittest.main()


class EvalWithReranking(unittest.TestCase):
    """`quarry eval --rerank MODEL` scores the searches again in the reranker's order."""

    def test_eval_scores_the_rerankers_order(self):
        reranker = RerankServer()
        try:
            self.run_eval(reranker)
        finally:
            reranker.close()

    def run_eval(self, reranker):
        work = tempfile.mkdtemp(prefix="quarry-eval-rerank-")
        beir = os.path.join(work, "beir")
        os.makedirs(os.path.join(beir, "qrels"))
        docs = {"d1": ("Lighthouses", "The keeper climbs the tower every evening to light the lamp."),
                "d2": ("Volcanoes", "Magma chambers refill slowly and eruptions eject ash clouds."),
                "d3": ("Bread", "Sourdough needs a starter fed with flour and water twice a day.")}
        with open(os.path.join(beir, "corpus.jsonl"), "w") as f:
            for id, (title, text) in docs.items():
                f.write(json.dumps({"_id": id, "title": title, "text": text}) + "\n")
        queries = {"q1": "who lights the lamp in the lighthouse tower", "q2": "how to feed a sourdough starter"}
        with open(os.path.join(beir, "queries.jsonl"), "w") as f:
            for id, text in queries.items():
                f.write(json.dumps({"_id": id, "text": text}) + "\n")
        with open(os.path.join(beir, "qrels", "test.tsv"), "w") as f:
            f.write("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
        config = os.path.join(work, "quarry.toml")
        with open(config, "w") as f:
            f.write(f'''
[models.minilm]
kind = "bert"
path = "{MODEL}"

[models.reverse]
kind = "rerank-api"
base_url = "{reranker.url}"
model = "reverse"
''')
        out = subprocess.run([os.environ["QUARRY_BIN"], "--config", config, "eval", beir, "--split", "test",
                              "--rerank", "reverse", "--rerank-candidates", "3"],
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        rows = {cells[0]: [float(c) for c in cells[1:5]]
                for line in out.stdout.splitlines() if line.startswith("| ") and not line.startswith("| mode")
                for cells in [[c.strip() for c in line.strip("|").split("|")]]}
        # Both queries find their document first; reversed, it is third of three: 1/log2(4).
        self.assertEqual(rows["SEMANTIC (HNSW)"][0], 1.0, out.stdout)
        self.assertEqual(rows["HYBRID"][0], 1.0, out.stdout)
        self.assertEqual(rows["SEMANTIC, reranked by reverse (top 3)"][0], 0.5, out.stdout)
        self.assertEqual(rows["HYBRID, reranked by reverse (top 3)"][0], 0.5, out.stdout)
        sent = reranker.requests()
        self.assertEqual(len(sent), 4, "one request per query and search type")
        self.assertEqual(sorted({r["body"]["query"] for r in sent}), sorted(queries.values()))
        self.assertTrue(all(len(r["body"]["documents"]) == 3 for r in sent), sent)
