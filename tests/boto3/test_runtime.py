"""Retrieve through the real AWS SDK for Python."""
import unittest

from harness import Server


class Retrieve(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        job = cls.server.sync("DEMOKB0001", "DEMODS0001")
        assert job["status"] == "COMPLETE", job
        cls.rt = cls.server.runtime()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def retrieve(self, text, **config):
        kwargs = {"knowledgeBaseId": "DEMOKB0001", "retrievalQuery": {"text": text}}
        if config:
            kwargs["retrievalConfiguration"] = {"vectorSearchConfiguration": config}
        return self.rt.retrieve(**kwargs)

    def test_semantic_retrieve_returns_bedrocks_shape(self):
        r = self.retrieve("How many vacation days do new employees get?", numberOfResults=3)
        results = r["retrievalResults"]
        self.assertEqual(len(results), 3)
        top = results[0]
        self.assertIn("25 days of paid vacation", top["content"]["text"])
        self.assertEqual(top["content"]["type"], "TEXT")
        self.assertEqual(top["location"]["type"], "CUSTOM")
        self.assertTrue(top["location"]["customDocumentLocation"]["id"].endswith("handbook/vacation-policy.md"))
        self.assertIsInstance(top["score"], float)
        self.assertGreaterEqual(top["score"], results[1]["score"])
        md = top["metadata"]
        self.assertEqual(md["x-amz-bedrock-kb-data-source-id"], "DEMODS0001")
        self.assertTrue(md["x-amz-bedrock-kb-source-uri"].startswith("file://"))
        self.assertEqual(len(md["x-amz-bedrock-kb-chunk-id"]), 32)
        self.assertEqual(md["department"], "hr")
        self.assertEqual(md["audience"], ["employees", "managers"])
        self.assertIn("x-amzn-requestid", r["ResponseMetadata"]["HTTPHeaders"])

    def test_explicit_semantic_equals_default(self):
        a = self.retrieve("robot battery life", numberOfResults=2)
        b = self.retrieve("robot battery life", numberOfResults=2, overrideSearchType="SEMANTIC")
        self.assertEqual([x["content"]["text"] for x in a["retrievalResults"]], [x["content"]["text"] for x in b["retrievalResults"]])

    def test_filters_apply(self):
        r = self.retrieve("price", numberOfResults=10, filter={"equals": {"key": "department", "value": "sales"}})
        self.assertTrue(r["retrievalResults"])
        self.assertTrue(all(x["metadata"]["department"] == "sales" for x in r["retrievalResults"]))
        r = self.retrieve("policy", numberOfResults=20, filter={"andAll": [
            {"equals": {"key": "department", "value": "hr"}},
            {"greaterThanOrEquals": {"key": "year", "value": 2024}},
        ]})
        sources = {x["location"]["customDocumentLocation"]["id"].rsplit("/", 1)[-1] for x in r["retrievalResults"]}
        self.assertEqual(sources, {"vacation-policy.md"})
        # notEquals also matches documents without the key (the runbook has no sidecar).
        r = self.retrieve("incident", numberOfResults=20, filter={"notEquals": {"key": "department", "value": "hr"}})
        sources = {x["location"]["customDocumentLocation"]["id"].rsplit("/", 1)[-1] for x in r["retrievalResults"]}
        self.assertEqual(sources, {"incident-runbook.md", "product-faq.html", "pricing.csv"})

    def test_hybrid_retrieve_finds_the_passage_with_scores_in_0_1(self):
        r = self.retrieve("How many vacation days do new employees get?", numberOfResults=3, overrideSearchType="HYBRID")
        results = r["retrievalResults"]
        self.assertEqual(len(results), 3)
        self.assertIn("25 days of paid vacation", results[0]["content"]["text"])
        scores = [x["score"] for x in results]
        self.assertEqual(scores, sorted(scores, reverse=True))
        self.assertTrue(all(0.0 <= s <= 1.0 for s in scores), scores)

    def test_unknown_search_type_is_a_validation_error(self):
        with self.assertRaises(self.rt.exceptions.ValidationException) as e:
            self.retrieve("battery", overrideSearchType="KEYWORD")
        self.assertIn("overrideSearchType", str(e.exception))

    def test_bad_filter_is_a_validation_error_naming_the_field(self):
        with self.assertRaises(self.rt.exceptions.ValidationException) as e:
            self.retrieve("battery", filter={"greaterThan": {"key": "year", "value": "recent"}})
        self.assertIn("filter.greaterThan.value", str(e.exception))

    def test_unknown_knowledge_base_is_not_found(self):
        with self.assertRaises(self.rt.exceptions.ResourceNotFoundException):
            self.rt.retrieve(knowledgeBaseId="NOSUCHKB01", retrievalQuery={"text": "x"})

    def test_paginator_walks_every_chunk_once_in_score_order(self):
        pages = list(self.rt.get_paginator("retrieve").paginate(
            knowledgeBaseId="DEMOKB0001", retrievalQuery={"text": "robot"},
            retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 2}}))
        results = [x for p in pages for x in p["retrievalResults"]]
        ids = [x["metadata"]["x-amz-bedrock-kb-chunk-id"] for x in results]
        everything = self.retrieve("robot", numberOfResults=100)["retrievalResults"]
        self.assertGreater(len(pages), 2)
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(ids, [x["metadata"]["x-amz-bedrock-kb-chunk-id"] for x in everything])
        scores = [x["score"] for x in results]
        self.assertEqual(scores, sorted(scores, reverse=True))


if __name__ == "__main__":
    unittest.main()
