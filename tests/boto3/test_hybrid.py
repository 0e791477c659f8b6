"""HYBRID search and HIERARCHICAL chunking through the real AWS SDK for Python: the lexical
index follows adds, edits and deletes, filters apply to both retrievers, and hierarchical
search returns each parent once."""
import unittest

from harness import Server


def inline_text(doc_id, text, **attributes):
    doc = {"content": {"dataSourceType": "CUSTOM", "custom": {
        "customDocumentIdentifier": {"id": doc_id}, "sourceType": "IN_LINE",
        "inlineContent": {"type": "TEXT", "textContent": {"data": text}}}}}
    if attributes:
        doc["metadata"] = {"type": "IN_LINE_ATTRIBUTE", "inlineAttributes": [
            {"key": k, "value": {"type": "STRING", "stringValue": v}} for k, v in attributes.items()]}
    return doc


PARTS = {
    "gripper": ("Order part QX-7731 to replace the worn gripper pad on the robot arm.", "arm"),
    "wheel": ("Order part BT-2290 when the drive wheel tread is worn down.", "base"),
    "sensor": ("Order part LM-5518 to replace a cracked distance sensor lens.", "head"),
    "battery": ("Order part RC-8804 when the battery pack no longer holds a charge.", "base"),
}

CHAPTERS = [
    ("Kilns", "kiln", "The kiln is loaded with bisque ware on shelves. Cones on the shelf show the heat work reached. "
     "Firing climbs slowly through the first hours to drive out water. The kiln is then held at peak for stoneware. "
     "Cooling must be slow so pots do not crack. Unloading waits until the kiln is below one hundred degrees."),
    ("Glazes", "glaze", "Glazes are mixed from silica, alumina and fluxes. Each glaze is sieved twice before use. "
     "Dipping gives an even glaze coat in seconds. Brushing a glaze takes three coats. "
     "A glaze test tile is fired before every new batch. Glaze recipes are kept in the studio binder."),
    ("Clay", "clay", "Clay arrives in bags and is wedged before throwing. Wedging clay removes air pockets. "
     "Reclaimed clay is dried on plaster bats. Porcelain clay is the hardest to throw. "
     "Clay dust is swept wet, never dry. Every clay body has its own shrinkage rate."),
]


class Hybrid(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        extra = '''
[[knowledge_bases]]
id = "HYBRIDKB01"
name = "hybrid"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "PARTSDS001"
name = "parts"
type = "custom"

[[knowledge_bases.data_sources]]
id = "STUDIODS01"
name = "studio"
type = "custom"
chunking = { strategy = "HIERARCHICAL", parent_max_tokens = 120, child_max_tokens = 30, overlap_tokens = 1 }
'''
        cls.server = Server(extra_toml=extra)
        cls.ag = cls.server.agent()
        cls.rt = cls.server.runtime()
        details = cls.ag.ingest_knowledge_base_documents(
            knowledgeBaseId="HYBRIDKB01", dataSourceId="PARTSDS001",
            documents=[inline_text(k, text, assembly=a) for k, (text, a) in PARTS.items()])["documentDetails"]
        assert all(d["status"] == "INDEXED" for d in details), details

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def retrieve(self, text, n=5, **config):
        config["numberOfResults"] = n
        return self.rt.retrieve(knowledgeBaseId="HYBRIDKB01", retrievalQuery={"text": text},
                                retrievalConfiguration={"vectorSearchConfiguration": config})["retrievalResults"]

    def ids(self, results):
        return [r["location"]["customDocumentLocation"]["id"] for r in results]

    def test_hybrid_finds_an_exact_part_number(self):
        for code, doc in [("QX-7731", "gripper"), ("LM-5518", "sensor"), ("RC-8804", "battery")]:
            results = self.retrieve(f"which order is {code}", overrideSearchType="HYBRID")
            self.assertEqual(self.ids(results)[0], doc, code)
            self.assertIn(code, results[0]["content"]["text"])

    def test_hybrid_applies_filters_to_both_retrievers(self):
        results = self.retrieve("QX-7731 gripper pad", n=10, overrideSearchType="HYBRID",
                                filter={"equals": {"key": "assembly", "value": "base"}})
        self.assertEqual(sorted(self.ids(results)), ["battery", "wheel"])

    def test_edits_and_deletes_reach_both_retrievers(self):
        self.ag.ingest_knowledge_base_documents(knowledgeBaseId="HYBRIDKB01", dataSourceId="PARTSDS001", documents=[
            inline_text("valve", "Order part ZP-4409 to replace a leaking coolant valve.")])
        self.assertEqual(self.ids(self.retrieve("ZP-4409", overrideSearchType="HYBRID"))[0], "valve")

        # An edit: the old number is gone from the lexical side, the new one found.
        self.ag.ingest_knowledge_base_documents(knowledgeBaseId="HYBRIDKB01", dataSourceId="PARTSDS001", documents=[
            inline_text("valve", "Order part WF-6120 to replace a leaking coolant valve.")])
        results = self.retrieve("WF-6120", overrideSearchType="HYBRID")
        self.assertEqual(self.ids(results)[0], "valve")
        self.assertNotIn("ZP-4409", " ".join(r["content"]["text"] for r in self.retrieve("ZP-4409", n=100, overrideSearchType="HYBRID")))

        self.ag.delete_knowledge_base_documents(knowledgeBaseId="HYBRIDKB01", dataSourceId="PARTSDS001",
                                                documentIdentifiers=[{"dataSourceType": "CUSTOM", "custom": {"id": "valve"}}])
        for search_type in ["SEMANTIC", "HYBRID"]:
            found = self.ids(self.retrieve("WF-6120 leaking coolant valve", n=100, overrideSearchType=search_type))
            self.assertNotIn("valve", found, search_type)

    def test_hierarchical_search_returns_each_parent_once(self):
        text = " ".join(body for _, _, body in CHAPTERS)
        details = self.ag.ingest_knowledge_base_documents(knowledgeBaseId="HYBRIDKB01", dataSourceId="STUDIODS01",
                                                          documents=[inline_text("studio-manual", text)])["documentDetails"]
        self.assertEqual(details[0]["status"], "INDEXED")
        for search_type in ["SEMANTIC", "HYBRID"]:
            results = self.retrieve("how is the glaze applied", n=10, overrideSearchType=search_type,
                                    filter={"equals": {"key": "x-amz-bedrock-kb-data-source-id", "value": "STUDIODS01"}})
            texts = [r["content"]["text"] for r in results]
            self.assertEqual(len(texts), len(set(texts)), search_type)
            # Parents of about 120 tokens, not children of 30: several sentences each.
            self.assertTrue(all(t.count(". ") >= 3 for t in texts), texts)
            self.assertIn("Dipping gives an even glaze coat", texts[0])
            # The three chapters' worth of parents, no more, however many children matched.
            self.assertLessEqual(len(texts), 4)


if __name__ == "__main__":
    unittest.main()
